"""Tests of medlabel.io.itk: NIfTI, NRRD and MetaImage through SimpleITK."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.errors import ReadError, WriteError
from medlabel.image import MedicalImage
from medlabel.io import read_image, read_label, write_image
from medlabel.io.itk import itk_reason, label_dtype, read_itk, write_itk

EXTENSIONS = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def _rotation() -> np.ndarray:
    """A proper rotation (det +1) that is not axis-aligned: 30 deg about z, then 20 about x."""
    cz, sz = np.cos(np.radians(30)), np.sin(np.radians(30))
    cx, sx = np.cos(np.radians(20)), np.sin(np.radians(20))
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    return rx @ rz


def _ct() -> MedicalImage:
    """Oblique int16 CT-like volume; spacing and origin are exact in float32 (NIfTI)."""
    rng = np.random.default_rng(0)
    arr = rng.integers(-1024, 3000, size=(5, 6, 7), dtype=np.int16)
    arr[0, 0, 0], arr[-1, -1, -1] = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    return MedicalImage(
        arr,
        spacing=(0.75, 1.25, 2.5),
        origin=(-12.5, 30.25, 101.0),
        direction=tuple(_rotation().ravel()),
        modality="CT",
    )


def _label() -> MedicalImage:
    arr = np.zeros((4, 6, 8), np.uint8)
    arr[1:3, 2:5, 3:7] = 1
    arr[2, 3, 4] = 2
    arr[3, 5, 7] = 255
    return MedicalImage(arr, spacing=(0.5, 0.5, 3.0), origin=(1.0, -2.0, 3.5), is_label=True)


def _float() -> MedicalImage:
    arr = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)
    arr[0, 0, 0] = np.float32(1e-30)  # tiny values survive as well
    return MedicalImage(
        arr,
        spacing=(1.5, 0.25, 4.0),
        origin=(0.0, 0.0, -50.0),
        direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1),
    )


def _2d() -> MedicalImage:
    c, s = np.cos(np.radians(25)), np.sin(np.radians(25))
    arr = np.arange(5 * 6, dtype=np.uint16).reshape(5, 6) * 2000
    return MedicalImage(arr, spacing=(0.5, 0.75), origin=(1.5, -2.5), direction=(c, -s, s, c))


CASES = {"int16_oblique": _ct, "uint8_label": _label, "float32": _float, "2d_uint16": _2d}


def _assert_same_image(back: MedicalImage, img: MedicalImage) -> None:
    assert back.ndim == img.ndim
    assert back.size == img.size
    assert back.channels == img.channels
    np.testing.assert_allclose(back.spacing, img.spacing, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.origin, img.origin, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.direction, img.direction, rtol=0, atol=1e-6)
    assert back.dtype == img.dtype
    np.testing.assert_array_equal(back.array, img.array)


def _leftovers(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("ext", EXTENSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_keeps_geometry_values_and_dtype(tmp_path: Path, ext: str, case: str) -> None:
    img = CASES[case]()
    path = tmp_path / f"image{ext}"
    write_image(img, path)
    back = read_image(path)
    _assert_same_image(back, img)
    assert back.metadata["format"] == ext.lstrip(".")
    # only the target (plus the MetaImage data file) is left: no temp files
    expected = ["image.mhd", "image.zraw"] if ext == ".mhd" else [f"image{ext}"]
    assert _leftovers(tmp_path) == expected


@pytest.mark.parametrize("ext", [".nrrd", ".mha", ".nii.gz"])
def test_multichannel_volume_round_trip(tmp_path: Path, ext: str) -> None:
    arr = np.random.default_rng(2).normal(size=(3, 4, 5, 2)).astype(np.float32)
    img = MedicalImage(arr, spacing=(1.0, 2.0, 3.0), origin=(4.0, 5.0, 6.0))
    write_itk(img, tmp_path / f"v{ext}")
    back = read_itk(tmp_path / f"v{ext}")
    _assert_same_image(back, img)


def test_rgb_2d_round_trip(tmp_path: Path) -> None:
    arr = np.random.default_rng(3).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    img = MedicalImage(arr, spacing=(0.25, 0.5))
    write_itk(img, tmp_path / "rgb.mha")
    _assert_same_image(read_itk(tmp_path / "rgb.mha"), img)


def test_gzipped_nifti_is_compressed_and_plain_nifti_is_not(tmp_path: Path) -> None:
    img = MedicalImage(np.zeros((20, 20, 20), np.int16), spacing=(1, 1, 1))
    write_image(img, tmp_path / "a.nii.gz")
    write_image(img, tmp_path / "a.nii")
    assert (
        gzip.decompress((tmp_path / "a.nii.gz").read_bytes())[:4]
        == (tmp_path / "a.nii").read_bytes()[:4]
    )
    assert (tmp_path / "a.nii.gz").stat().st_size < (tmp_path / "a.nii").stat().st_size / 4


def test_mhd_header_names_the_final_data_file(tmp_path: Path) -> None:
    write_itk(_ct(), tmp_path / "scan.mhd", compress=False)
    header = (tmp_path / "scan.mhd").read_text()
    assert "ElementDataFile = scan.raw" in header
    assert "tmp" not in header
    assert _leftovers(tmp_path) == ["scan.mhd", "scan.raw"]
    assert (tmp_path / "scan.raw").stat().st_size == 5 * 6 * 7 * 2
    # SimpleITK itself (not only medlabel) finds the data
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(tmp_path / "scan.mhd")), _ct().array
    )


def test_overwrite_replaces_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.nrrd"
    write_image(_ct(), path)
    write_image(_label(), path)
    _assert_same_image(read_image(path), _label())


def test_modality_travels_in_nrrd_and_mha(tmp_path: Path) -> None:
    for ext in (".nrrd", ".mha"):
        write_itk(_ct(), tmp_path / f"ct{ext}")
        assert read_itk(tmp_path / f"ct{ext}").modality == "CT"
    write_itk(_float(), tmp_path / "none.nrrd")
    assert read_itk(tmp_path / "none.nrrd").modality is None


def test_metaimage_placeholder_modality_counts_as_untagged(tmp_path: Path) -> None:
    """SimpleITK writes no modality and ITK reads MET_MOD_UNKNOWN back: that is no modality;
    MetaIO's real codes become DICOM codes, and medlabel's own tag still wins."""
    itk = sitk.GetImageFromArray(_ct().array)
    sitk.WriteImage(itk, str(tmp_path / "ct.mha"))
    assert sitk.ReadImage(str(tmp_path / "ct.mha")).GetMetaData("Modality") == "MET_MOD_UNKNOWN"
    assert read_itk(tmp_path / "ct.mha").modality is None
    sitk.WriteImage(itk, str(tmp_path / "ct.mhd"), False)
    header = (tmp_path / "ct.mhd").read_text()
    for code, expected in [
        ("MET_MOD_CT", "CT"),
        ("MET_MOD_MR", "MR"),
        ("MET_MOD_US", "US"),
        ("MET_MOD_OTHER", None),
        ("MET_MOD_UNKNOWN", None),
    ]:
        tagged = header.replace("ElementDataFile", f"Modality = {code}\nElementDataFile")
        (tmp_path / "ct.mhd").write_text(tagged)
        assert read_itk(tmp_path / "ct.mhd").modality == expected, code
    for ext in (".mha", ".mhd"):  # medlabel's own tag round-trips
        write_itk(_ct().with_array(_ct().array, modality="MR"), tmp_path / f"mr{ext}")
        assert read_itk(tmp_path / f"mr{ext}").modality == "MR"


def test_read_with_is_label(tmp_path: Path) -> None:
    write_itk(_label().with_array(_label().array, is_label=False), tmp_path / "m.nii.gz")
    assert read_itk(tmp_path / "m.nii.gz").is_label is False
    assert read_itk(tmp_path / "m.nii.gz", is_label=True).is_label is True
    assert read_image(tmp_path / "m.nii.gz", is_label=True).is_label is True


# ------------------------------------------------------------------------------ label maps
@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([0, 1, 2], np.uint8),
        ([0, 1, 300], np.uint16),
        ([-1, 0, 5], np.int16),
        ([0, 1, 70000], np.int32),
    ],
)
@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd"])
def test_float_label_map_with_integral_values_is_written_as_integers(
    tmp_path: Path, values: list[int], dtype: type, ext: str
) -> None:
    arr = np.zeros((2, 3, 4), np.float32)
    arr[0, 0, :3] = values
    img = MedicalImage(arr, spacing=(1, 1, 1), is_label=True)
    write_image(img, tmp_path / f"mask{ext}")
    back = read_label(tmp_path / f"mask{ext}")
    assert back.dtype == dtype
    assert back.array[0, 0, :3].tolist() == values
    assert back.is_label


def test_float_image_not_marked_as_label_stays_float(tmp_path: Path) -> None:
    img = MedicalImage(np.ones((2, 3, 4), np.float32), spacing=(1, 1, 1))
    write_image(img, tmp_path / "f.nii.gz")
    assert read_image(tmp_path / "f.nii.gz").dtype == np.float32


@pytest.mark.parametrize("bad", [0.5, np.nan, np.inf])
def test_label_map_with_non_integer_values_is_refused(tmp_path: Path, bad: float) -> None:
    arr = np.zeros((2, 3, 4), np.float64)
    arr[1, 1, 1] = bad
    img = MedicalImage(arr, spacing=(1, 1, 1), is_label=True)
    with pytest.raises(WriteError, match="non-integer") as info:
        write_image(img, tmp_path / "mask.nii.gz")
    assert info.value.path == tmp_path / "mask.nii.gz"
    assert _leftovers(tmp_path) == []


def test_label_dtype_leaves_integer_arrays_alone() -> None:
    arr = np.array([[-5, 70000]], np.int64)
    assert label_dtype(arr, "x") is arr
    assert label_dtype(np.zeros((0, 3)), "x").dtype == np.uint8
    assert label_dtype(np.array([2.0**40]), "x").dtype == np.int64


def test_int64_nifti_is_narrowed_to_int32(tmp_path: Path) -> None:
    arr = np.array([[[-(2**31), 0, 2**31 - 1]]], np.int64)
    write_itk(MedicalImage(arr, spacing=(1, 1, 1)), tmp_path / "big.nii")
    back = read_itk(tmp_path / "big.nii")
    assert back.dtype == np.int32
    assert back.array.tolist() == arr.tolist()


# ---------------------------------------------------------------------------- NIfTI / RAS
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_nifti_affine_seen_by_nibabel_is_ras_of_lps_affine(tmp_path: Path, ext: str) -> None:
    img = _ct()
    path = tmp_path / f"ct{ext}"
    write_image(img, path)
    nii = nib.load(path)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    np.testing.assert_allclose(nii.affine, lps_to_ras @ img.affine(), rtol=0, atol=1e-5)
    # nibabel indexes voxels (i, j, k) = ITK order: its array is ours transposed
    np.testing.assert_array_equal(np.asarray(nii.dataobj), img.array.transpose(2, 1, 0))
    assert nii.get_data_dtype() == np.int16
    # the voxel at ITK index (6, 2, 3) lands at the same point in both tools
    ras = nii.affine @ np.array([6, 2, 3, 1.0])
    np.testing.assert_allclose(ras[:3] * [-1, -1, 1], img.index_to_world((6, 2, 3)), atol=1e-5)


def test_nifti_written_by_nibabel_reads_as_lps(tmp_path: Path) -> None:
    ras_affine = np.array([[2.0, 0, 0, 10], [0, 3.0, 0, -20], [0, 0, 4.0, 30], [0, 0, 0, 1]])
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)  # (i, j, k)
    nib.save(nib.Nifti1Image(data, ras_affine), tmp_path / "nb.nii.gz")
    img = read_image(tmp_path / "nb.nii.gz")
    assert img.size == (2, 3, 4)
    assert img.spacing == pytest.approx((2.0, 3.0, 4.0))
    assert img.origin == pytest.approx((-10.0, 20.0, 30.0))
    assert img.direction == pytest.approx((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    np.testing.assert_array_equal(img.array, data.transpose(2, 1, 0))


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
@pytest.mark.parametrize("keep", [0.5, 0.99, 0.2])
def test_truncated_nifti_is_a_read_error_naming_the_file(
    tmp_path: Path, ext: str, keep: float
) -> None:
    # ITK's NIfTI reader zero-fills missing voxels; medlabel must refuse such files.
    arr = np.random.default_rng(4).integers(-1000, 1000, (24, 24, 24)).astype(np.int16)
    good = tmp_path / f"good{ext}"
    write_image(_ct().with_array(arr), good)
    data = good.read_bytes()
    bad = tmp_path / f"truncated{ext}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ReadError) as info:
        read_image(bad)
    assert f"truncated{ext}" in str(info.value)
    assert info.value.path == bad
    assert "\n" not in str(info.value)
    with pytest.raises(ReadError, match=f"truncated{re.escape(ext)}"):
        read_itk(bad)
    _assert_same_image(read_image(good), _ct().with_array(arr))  # the intact file still reads


def test_truncated_gzipped_nifti_reports_the_bytes_recovered(tmp_path: Path) -> None:
    """The count is what the cut stream still decodes to, not 0 (gzip drops its last block)."""
    import zlib

    data = np.random.default_rng(5).integers(0, 50, (40, 40, 40)).astype(np.uint8)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "good.nii.gz")
    packed = (tmp_path / "good.nii.gz").read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(packed[: len(packed) // 2])
    recovered = len(zlib.decompressobj(wbits=31).decompress(bad.read_bytes()))
    need = 352 + data.size  # NIfTI-1 header and extension flag, then uint8 voxels
    assert 0 < recovered < need
    with pytest.raises(ReadError) as info:
        read_image(bad)
    assert info.value.reason == (
        f"file is truncated: its compressed data ends after {recovered} of the {need} bytes "
        "its header promises"
    )


def test_truncated_small_gzipped_nifti_header_is_a_read_error(tmp_path: Path) -> None:
    good = tmp_path / "small.nii.gz"
    write_image(MedicalImage(np.full((8, 8, 8), 7, np.int16), spacing=(1, 1, 1)), good)
    data = good.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=r"cut\.nii\.gz: "):
        read_image(bad)


def test_multi_member_gzip_nifti_is_not_mistaken_for_truncated(tmp_path: Path) -> None:
    img = _ct()
    write_image(img, tmp_path / "plain.nii")
    raw = (tmp_path / "plain.nii").read_bytes()
    half = len(raw) // 2  # two gzip members: the trailer holds only the second one's size
    (tmp_path / "multi.nii.gz").write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    _assert_same_image(read_image(tmp_path / "multi.nii.gz"), img)


def test_garbage_with_image_extension_is_a_read_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.nrrd"
    bad.write_bytes(b"this is not an image at all\n" * 10)
    with pytest.raises(ReadError, match=r"junk\.nrrd: cannot read image"):
        read_itk(bad)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(ReadError, match=r"nope\.nii\.gz: no such file"):
        read_itk(missing)
    with pytest.raises(ReadError, match=r"nope\.nii\.gz"):
        read_image(missing)
    with pytest.raises(ReadError, match="no such file"):
        read_itk(tmp_path)  # a folder is not a file


def test_unknown_extension_is_a_write_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"cannot write \.xyz"):
        write_image(_ct(), tmp_path / "out.xyz")
    with pytest.raises(WriteError, match=r"out\.xyz"):
        write_itk(_ct(), tmp_path / "out.xyz")
    with pytest.raises(WriteError, match="no extension"):
        write_image(_ct(), tmp_path / "out")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_failed_write_leaves_no_temp_files_and_keeps_existing_target(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / f"out{ext}"
    write_itk(_label(), target)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_write = sitk.WriteImage

    def write_then_fail(image: sitk.Image, path: str, *args: object) -> None:
        real_write(image, path, *args)  # a partial file on disk, as when the disk fills up
        raise RuntimeError("ITK ERROR: ImageIO(0x1): Description: No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", write_then_fail)
    with pytest.raises(WriteError, match="No space left on device") as info:
        write_itk(_ct(), target)
    assert info.value.path == target
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("ext", EXTENSIONS)
def test_failed_first_write_leaves_an_empty_folder(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = sitk.WriteImage

    def write_then_fail(image: sitk.Image, path: str, *args: object) -> None:
        real_write(image, path, *args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", write_then_fail)
    with pytest.raises(WriteError):
        write_image(_ct(), tmp_path / f"new{ext}")
    assert _leftovers(tmp_path) == []


def test_itk_reason_extracts_the_description() -> None:
    exc = RuntimeError(
        "Exception thrown in SimpleITK ImageFileReader_Execute: /src/itkImageFileReader.hxx:135:\n"
        "ITK ERROR: ImageFileReader(0x5): Could not read file.\n"
        "Description: The file is truncated.\n"
    )
    assert itk_reason(exc) == "The file is truncated"
    assert itk_reason(RuntimeError("first\nlast line.")) == "last line"
    assert itk_reason(RuntimeError("")) == "RuntimeError('')"


@pytest.mark.parametrize("ext", ["nii.gz", "nrrd", "mha"])
def test_a_4d_file_gives_the_volume_asked_for(tmp_path: Path, ext: str) -> None:
    """Time series, diffusion directions, echoes: one volume at a time, on the grid of the
    first three axes, as SimpleITK extracts it; without an index, a clear error."""
    rng = np.random.default_rng(0)
    series = rng.integers(0, 1000, (4, 6, 7, 8)).astype(np.int16)  # (t, z, y, x)
    itk = sitk.GetImageFromArray(series, isVector=False)
    itk.SetSpacing((0.8, 0.9, 2.5, 3.0))
    itk.SetOrigin((-10.0, 20.0, 5.0, 0.0))
    path = tmp_path / f"series.{ext}"
    sitk.WriteImage(itk, str(path))
    with pytest.raises(
        ReadError, match=r"a 4D image of 4 volumes of 8x7x6: choose one with --index 0\.\.3"
    ):
        read_image(path)
    with pytest.raises(ReadError, match=r"volume index 4 is outside 0\.\.3"):
        read_image(path, index=4)
    for k in (0, 3):
        volume = read_image(path, index=k)
        np.testing.assert_array_equal(volume.array, series[k])
        assert volume.spacing == pytest.approx((0.8, 0.9, 2.5))
        assert volume.origin == pytest.approx((-10.0, 20.0, 5.0))
        assert volume.metadata["volume"] == k and volume.metadata["volumes"] == 4
    one = sitk.GetImageFromArray(series[:1], isVector=False)
    sitk.WriteImage(one, str(tmp_path / f"one.{ext}"))
    np.testing.assert_array_equal(read_image(tmp_path / f"one.{ext}").array, series[0])


@pytest.mark.parametrize("ext, data", [("mhd", "raw"), ("nhdr", "raw")])
def test_a_detached_header_without_its_data_file_says_so(
    tmp_path: Path, ext: str, data: str
) -> None:
    sitk.WriteImage(
        sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)), str(tmp_path / f"a.{ext}")
    )
    assert read_image(tmp_path / f"a.{ext}").size == (5, 4, 3)  # with its data file: fine
    (tmp_path / f"a.{data}").unlink()
    with pytest.raises(ReadError, match=rf"its voxel data file a\.{data} is missing"):
        read_image(tmp_path / f"a.{ext}")


def test_reading_options_that_do_not_apply_are_named_as_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)), str(volume))
    with caplog.at_level("WARNING", logger="medlabel.io"):
        read_image(volume, index=2)
        read_image(volume, series=1)
    assert "index 2 ignored" in caplog.text and "series 1 ignored" in caplog.text
    caplog.clear()
    series = tmp_path / "t.nrrd"
    four_d = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.int16), isVector=False)
    sitk.WriteImage(four_d, str(series))
    with caplog.at_level("WARNING", logger="medlabel.io"):
        read_image(series, index=1)  # a 4D file: the index picks its volume
        read_image(volume)
    assert caplog.text == ""


def test_an_image_read_as_a_label_map_is_questioned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ct = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 3, 4), -1024, np.int16)), str(ct))
    mask = tmp_path / "mask.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 3, 4), np.int16)), str(mask))
    with caplog.at_level("WARNING", logger="medlabel.io"):
        read_label(mask)
    assert caplog.text == ""
    with caplog.at_level("WARNING", logger="medlabel.io"):
        read_label(ct)
    assert "negative values (down to -1024)" in caplog.text
