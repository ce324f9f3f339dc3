"""Pixel decoding: compressed transfer syntaxes, enhanced multi-frame, SEG, colour, rescale.

Uses the sample files of the pydicom-data wheel, a dependency of medlabel, so these tests
always run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from medlabel.errors import ReadError, SliceSpacingError
from medlabel.io import read_image, write_image
from medlabel.io.dicom.pixels import rescaled_dtype, stored_range


def sample(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not in the installed pydicom-data")
    return Path(path)


@pytest.mark.parametrize(
    ("compressed", "reference"),
    [
        ("693_J2KR.dcm", "693_UNCR.dcm"),  # JPEG-2000 lossless CT
        ("MR2_J2KR.dcm", "MR2_UNCR.dcm"),  # JPEG-2000 lossless MR
        ("RG1_J2KR.dcm", "RG1_UNCR.dcm"),  # JPEG-2000 lossless CR, MONOCHROME1
        ("US1_J2KR.dcm", "US1_UNCR.dcm"),  # JPEG-2000 lossless RGB
        ("emri_small_RLE.dcm", "emri_small.dcm"),  # RLE lossless multi-frame
        ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm"),
        ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),  # JPEG-LS
        ("emri_small_big_endian.dcm", "emri_small.dcm"),
        ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
    ],
)
def test_lossless_syntaxes_decode_to_the_uncompressed_values(compressed, reference):
    if compressed == "SC_rgb_rle.dcm":
        comp = Path(pydicom.data.get_testdata_file(compressed))
        ref_path = Path(pydicom.data.get_testdata_file(reference))
    else:
        comp, ref_path = sample(compressed), sample(reference)
    a, b = read_image(comp), read_image(ref_path)
    assert a.size == b.size and a.spacing == b.spacing and a.direction == b.direction
    np.testing.assert_array_equal(a.array, b.array)


def test_jpeg_lossless_process14_decodes():
    img = read_image(sample("JPEG-LL.dcm"))
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(sample("JPEG-LL.dcm"))))
    np.testing.assert_array_equal(img.array.reshape(ref.shape), ref)


def test_monochrome1_matches_simpleitk_which_also_inverts():
    path = sample("RG1_UNCR.dcm")
    img = read_image(path)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]
    np.testing.assert_array_equal(img.array, ref)
    raw = read_image(path, invert_monochrome1=False)
    np.testing.assert_array_equal(raw.array.astype(int), 32767 - ref.astype(int))
    assert img.ndim == 2 and img.modality == "CR"


def test_enhanced_ct_is_the_same_physical_volume_as_simpleitk():
    """SimpleITK returns this file with a left-handed frame (z not normal to the rows/columns'
    cross product); medlabel orders frames along the true normal. Same voxels, same places."""
    path = sample("eCT_Supplemental.dcm")
    img = read_image(path)
    ref = sitk.ReadImage(str(path))
    assert img.size == ref.GetSize()
    assert np.linalg.det(img.direction_matrix) == pytest.approx(1.0)
    ref_arr = sitk.GetArrayFromImage(ref)
    for k in range(img.size[2]):
        for ij in [(0, 0), (100, 37), (511, 511)]:
            world = img.index_to_world((*ij, k))
            kk = ref.TransformPhysicalPointToIndex(tuple(world))
            assert tuple(kk[:2]) == ij
            assert img.array[k, ij[1], ij[0]] == ref_arr[kk[2], kk[1], kk[0]]
    # exactly SimpleITK's grid with its z axis reversed: its frames in the file's order
    # (-159 then -149 mm) on a +z axis, medlabel's along the normal -z (-149 then -159 mm)
    ref_dir = np.asarray(ref.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(img.direction_matrix[:, :2], ref_dir[:, :2], atol=1e-6)
    np.testing.assert_allclose(img.direction_matrix[:, 2], -ref_dir[:, 2], atol=1e-6)
    top = np.asarray(ref.GetOrigin()) + (ref.GetSize()[2] - 1) * ref.GetSpacing()[2] * ref_dir[:, 2]
    np.testing.assert_allclose(img.origin, top, atol=1e-6)
    assert img.spacing == pytest.approx(ref.GetSpacing())
    np.testing.assert_array_equal(img.array, ref_arr[::-1])


def test_seg_reads_as_label_map_on_its_grid():
    path = sample("liver.dcm")
    seg = read_image(path)
    ref = sitk.ReadImage(str(path))
    assert seg.is_label and seg.modality == "SEG"
    assert seg.size == ref.GetSize()
    np.testing.assert_allclose(seg.origin, ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.spacing, ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(seg.direction, ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(seg.array > 0, sitk.GetArrayFromImage(ref) > 0)
    assert seg.metadata["segments"] == {1: "Liver"}
    assert set(np.unique(seg.array)) == {0, 1}


def test_palette_colour_becomes_rgb():
    img = read_image(Path(pydicom.data.get_testdata_file("OT-PAL-8-face.dcm")))
    assert img.channels == 3 and img.size == (640, 480)
    # a colour lookup, not grey copied three times
    assert not np.array_equal(img.array[..., 0], img.array[..., 2])


def test_rescaled_dtype_follows_stored_range():
    assert rescaled_dtype((0, 4095), [1], [-1024], np.dtype(np.uint16)) == np.int16
    assert rescaled_dtype((0, 65535), [1], [-1024], np.dtype(np.uint16)) == np.int32
    assert rescaled_dtype((0, 4095), [1], [0], np.dtype(np.uint16)) == np.uint16
    assert rescaled_dtype((0, 4095), [0.5], [0], np.dtype(np.uint16)) == np.float64
    ds = pydicom.Dataset()
    ds.BitsStored, ds.PixelRepresentation = 12, 1
    assert stored_range(ds) == (-2048, 2047)


# ------------------------------------------------------------------ RT dose, byte order, repairs
@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_rle.dcm", "rtdose_expb.dcm"])
def test_rt_dose_frames_are_placed_by_grid_frame_offsets(name):
    """GridFrameOffsetVector [0, 5, ..., 70] places the 15 frames 5 mm apart (was 1 mm)."""
    path = sample(name)
    img = read_image(path)
    ref = sitk.ReadImage(str(path))
    assert img.size == ref.GetSize() == (10, 10, 15)
    assert img.spacing == pytest.approx(ref.GetSpacing()) and img.spacing[2] == 5.0
    np.testing.assert_allclose(img.origin, ref.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(img.direction, ref.GetDirection(), atol=1e-6)
    plain = sitk.GetArrayFromImage(sitk.ReadImage(str(sample("rtdose.dcm"))))
    np.testing.assert_array_equal(img.array, plain)  # SimpleITK misreads the big-endian copy


def _rt_dose(tmp_path: Path, offsets: list[float], name: str = "dose.dcm") -> Path:
    ds = pydicom.dcmread(sample("rtdose.dcm"))
    ds.PixelData = ds.pixel_array[: len(offsets)].tobytes()
    ds.NumberOfFrames = len(offsets)
    ds.GridFrameOffsetVector = offsets
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_descending_grid_frame_offsets_put_each_frame_where_simpleitk_does(tmp_path):
    """Frames stored against the normal are sorted along it (right-handed, like a series);
    SimpleITK keeps the file's order with a reversed z axis: the same voxels, same places."""
    path = _rt_dose(tmp_path, [0.0, -5.0, -10.0, -15.0])
    img, ref = read_image(path), sitk.ReadImage(str(path))
    assert img.size == ref.GetSize() and img.spacing == pytest.approx(ref.GetSpacing())
    assert np.linalg.det(img.direction_matrix) == pytest.approx(1.0)
    assert img.origin[2] == pytest.approx(-761.87 - 15.0)
    ref_arr = sitk.GetArrayFromImage(ref)
    for k in range(4):
        kk = ref.TransformPhysicalPointToIndex(tuple(img.index_to_world((0, 0, k))))
        assert kk == (0, 0, 3 - k)
        np.testing.assert_array_equal(img.array[k], ref_arr[kk[2]])


def test_absolute_grid_frame_offsets_read_like_relative_ones(tmp_path):
    """An axial file may give absolute z positions, its first offset equal to the origin's z."""
    relative = read_image(_rt_dose(tmp_path, [0.0, 5.0, 10.0], "rel.dcm"))
    absolute = read_image(_rt_dose(tmp_path, [-761.87, -756.87, -751.87], "abs.dcm"))
    assert absolute.origin == relative.origin and absolute.spacing == relative.spacing
    shifted = read_image(_rt_dose(tmp_path, [-10.0, -5.0, 0.0], "neg.dcm"))  # relative to IPP
    assert shifted.origin[2] == pytest.approx(-771.87)


def test_uneven_grid_frame_offsets_follow_the_irregular_policy(tmp_path):
    path = _rt_dose(tmp_path, [0.0, 5.0, 15.0, 20.0])
    with pytest.raises(SliceSpacingError, match=r"1 missing slice.*frame 2 \(offset 5 mm\)"):
        read_image(path)
    img = read_image(path, irregular="resample")
    assert img.size[2] == 5 and img.spacing[2] == pytest.approx(5.0)
    kept = read_image(path, irregular="warn")
    assert kept.size[2] == 4 and kept.spacing[2] == pytest.approx(20 / 3)


def test_grid_frame_offsets_must_match_the_frames(tmp_path):
    path = _rt_dose(tmp_path, [0.0, 5.0, 10.0])
    ds = pydicom.dcmread(path)
    ds.GridFrameOffsetVector = [0.0, 5.0]
    ds.save_as(path)
    with pytest.raises(ReadError, match="GridFrameOffsetVector has 2 offsets for 3 frames"):
        read_image(path)


def test_big_endian_pixels_come_out_in_native_byte_order(tmp_path):
    img = read_image(sample("rtdose_expb.dcm"))
    assert img.dtype == np.dtype(np.uint32) and img.dtype.isnative
    write_image(img, tmp_path / "dose.nii.gz")  # failed: "dtype: >u4 is not supported"
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "dose.nii.gz")))
    np.testing.assert_array_equal(back, img.array)


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_a_number_of_frames_that_is_not_a_number_is_inferred_from_the_pixel_data():
    """badVR.dcm says NumberOfFrames '1A'; its 6000 bytes hold 15 frames of 10x10 uint32, as
    many as its GridFrameOffsetVector has offsets (SimpleITK falls back to one frame)."""
    img = read_image(sample("badVR.dcm"))
    assert img.size == (10, 10, 15) and img.spacing == pytest.approx((10, 10, 5))
    np.testing.assert_array_equal(img.array, read_image(sample("rtdose.dcm")).array)
    (warning,) = img.metadata["warnings"]
    assert "NumberOfFrames (0028,0008) is '1A'" in warning


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_a_bad_number_of_frames_in_compressed_data_is_named(tmp_path):
    ds = pydicom.dcmread(sample("rtdose_rle.dcm"))
    bad = pydicom.dcmread(sample("badVR.dcm"), stop_before_pixels=True)
    ds[0x00280008] = bad.get_item(0x00280008)  # the raw '1A', as pydicom refuses to set it
    ds.save_as(tmp_path / "bad.dcm")
    with pytest.raises(ReadError, match=r"NumberOfFrames \(0028,0008\) is '1A', not a number"):
        read_image(tmp_path / "bad.dcm")


def test_uncompressed_ybr_full_422_is_two_bytes_a_pixel():
    """Subsampled chroma: 20000 bytes for 100x100 pixels, not 30000 (was "truncated")."""
    path = sample("SC_ybr_full_422_uncompressed.dcm")
    img = read_image(path)
    assert img.channels == 3 and img.size == (100, 100)
    np.testing.assert_array_equal(img.array, sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0])
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(img.array, ds.pixel_array)


def test_truncated_ybr_full_422_is_still_truncated(tmp_path):
    ds = pydicom.dcmread(sample("SC_ybr_full_422_uncompressed.dcm"))
    ds.PixelData = ds.PixelData[:15000]
    ds.save_as(tmp_path / "cut.dcm")
    with pytest.raises(ReadError, match=r"truncated: 15000 bytes .*\(YBR_FULL_422\) need 20000"):
        read_image(tmp_path / "cut.dcm")


def test_12_bit_jpeg_with_a_loose_scan_header_decodes_like_simpleitk():
    """JPEG-lossy.dcm writes Se = 0 in its sequential scan, which IJG libjpeg (GDCM) ignores
    and pylibjpeg-libjpeg refused; lossy JPEG decoders may differ by one in the IDCT."""
    path = sample("JPEG-lossy.dcm")
    img = read_image(path)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]
    assert img.array.shape == ref.shape and img.dtype == ref.dtype
    diff = np.abs(img.array.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05


def test_third_party_tracebacks_stay_off_stderr(tmp_path):
    """pydicom logs each failing plugin with its traceback; the CLI shows one error line."""
    path = str(sample("JPEG2000-embedded-sequence-delimiter.dcm"))
    cli = [sys.executable, "-c", "from medlabel.cli import main; main()"]
    run = subprocess.run([*cli, "info", path], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    debug = subprocess.run([*cli, "--debug", "info", path], capture_output=True, text=True)
    assert "Traceback" in debug.stderr
    # medlabel's own warnings still show in its format
    ds = pydicom.dcmread(sample("rtdose.dcm"))
    ds.PixelData = ds.pixel_array[:3].tobytes()
    ds.NumberOfFrames, ds.GridFrameOffsetVector = 3, [0.0, 5.0, 15.0]
    ds.save_as(tmp_path / "dose.dcm")
    warn = subprocess.run(
        [*cli, "info", str(tmp_path / "dose.dcm"), "--irregular", "warn"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert warn.returncode == 0 and warn.stderr.startswith("warning: ")
