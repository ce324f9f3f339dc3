"""Reading synthetic DICOM series: order, geometry, gaps, tilt, mixed series, bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from medlabel.errors import (
    GantryTiltError,
    ReadError,
    SeriesError,
    SliceSpacingError,
)
from medlabel.io import read_image
from medlabel.io.dicom import read_dicom, scan_series

OBLIQUE = (0.8660254, 0.5, 0.0, -0.35355339, 0.61237244, 0.70710678)  # rotated about z and x


def sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_same_as_sitk(img, ref: sitk.Image) -> None:
    assert img.size == ref.GetSize()
    np.testing.assert_allclose(img.spacing, ref.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(img.origin, ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(img.direction, ref.GetDirection(), atol=1e-6)
    ref_arr = sitk.GetArrayFromImage(ref)
    assert img.dtype == ref_arr.dtype
    np.testing.assert_array_equal(img.array, ref_arr)


def test_axial_series_sorted_by_position_not_name(make_series, tmp_path):
    make_series(n=7, step=2.5, shuffle_names=True)
    img = read_image(tmp_path / "series")
    assert img.size == (10, 12, 7)
    assert img.spacing == pytest.approx((0.7, 0.8, 2.5))
    # slice k was written with values 100*(k+1)-1024 at pixel (0,0): ascending along z
    np.testing.assert_array_equal(img.array[:, 0, 0], 100 * np.arange(1, 8) - 1024)
    assert img.origin == pytest.approx((-20.0, -30.0, 40.0))
    assert img.dtype == np.int16  # 12-bit stored, intercept -1024: fits int16 like SimpleITK
    assert_same_as_sitk(img, sitk_series(tmp_path / "series"))


def test_oblique_series_matches_simpleitk(make_series, tmp_path):
    make_series(n=5, step=3.0, iop=OBLIQUE)
    img = read_image(tmp_path / "series")
    ref = sitk_series(tmp_path / "series")
    assert_same_as_sitk(img, ref)
    d = np.asarray(img.direction).reshape(3, 3)
    np.testing.assert_allclose(d[:, 0], OBLIQUE[:3], atol=1e-6)
    np.testing.assert_allclose(d[:, 2], np.cross(OBLIQUE[:3], OBLIQUE[3:]), atol=1e-6)
    # the world position of the last slice's first voxel is that slice's ImagePositionPatient
    last = img.index_to_world((0, 0, img.size[2] - 1))
    normal = np.cross(OBLIQUE[:3], OBLIQUE[3:])
    np.testing.assert_allclose(last, np.array((-20.0, -30.0, 40.0)) + 12.0 * normal, atol=1e-4)


def test_positions_descending_in_file_order_are_sorted(make_series, tmp_path):
    make_series(positions=[10.0, 7.5, 5.0, 2.5, 0.0], shuffle_names=False)
    img = read_image(tmp_path / "series")
    # the slice written first (k=0, value 100) is highest along the normal: it comes last
    np.testing.assert_array_equal(img.array[:, 0, 0] + 1024, [500, 400, 300, 200, 100])
    assert img.origin[2] == pytest.approx(40.0)
    assert_same_as_sitk(img, sitk_series(tmp_path / "series"))


def test_missing_slice_is_reported_with_numbers(make_series, tmp_path):
    make_series(positions=[0, 2.5, 5.0, 10.0, 12.5])
    with pytest.raises(SliceSpacingError, match=r"1 missing slice.*gap of 5\.000 mm.*2\.500 mm"):
        read_image(tmp_path / "series")


def test_missing_slice_resample_fills_the_gap(make_series, tmp_path):
    make_series(positions=[0, 2.5, 5.0, 10.0, 12.5])
    img = read_image(tmp_path / "series", irregular="resample")
    assert img.size[2] == 6 and img.spacing[2] == pytest.approx(2.5)
    # the filled slice at 7.5 mm is halfway between slices 3 (300) and 4 (400)
    assert img.array[3, 0, 0] + 1024 == pytest.approx(350.0)
    assert "interpolated" in img.metadata["warnings"][0]


def test_missing_slice_warn_keeps_slices(make_series, tmp_path):
    make_series(positions=[0, 2.5, 5.0, 10.0, 12.5])
    img = read_image(tmp_path / "series", irregular="warn")
    assert img.size[2] == 5 and img.spacing[2] == pytest.approx(12.5 / 4)
    assert img.dtype == np.int16


def test_uneven_spacing_is_an_error(make_series, tmp_path):
    make_series(positions=[0, 2.0, 5.0, 7.2, 9.0])
    with pytest.raises(SliceSpacingError, match="uneven slice spacing"):
        read_image(tmp_path / "series")


def test_duplicate_positions_are_refused(make_series, tmp_path):
    make_series(positions=[0, 2.5, 2.5, 5.0])
    with pytest.raises(SeriesError, match="share a position"):
        read_image(tmp_path / "series")


def test_gantry_tilt_is_detected_and_can_be_resampled(make_series, tmp_path):
    # slice origins drift 0.7 mm (one pixel) along the row direction per 2.5 mm slice
    make_series(n=5, step=2.5, inplane_drift=0.7, shape=(12, 16))
    with pytest.raises(GantryTiltError, match=r"gantry tilt about 15\.6 degrees"):
        read_image(tmp_path / "series")
    img = read_image(tmp_path / "series", tilt="resample")
    assert img.size == (16, 12, 5)
    # slice k moved one pixel per slice along +x: its column c holds the original column c-k
    pattern_row0 = np.arange(16)
    for k in range(1, 5):
        expected = 100 * (k + 1) + pattern_row0[: 16 - k] - 1024
        np.testing.assert_allclose(img.array[k, 0, k:], expected, atol=1e-3)


def test_mixed_series_in_one_folder(make_series, tmp_path):
    make_series("mixed", n=4, series_uid="1.2.3.10")
    make_series("mixed", n=3, series_uid="1.2.3.20", shape=(8, 8), prefix="B")
    with pytest.raises(SeriesError, match=r"holds 2 series.*--series"):
        read_image(tmp_path / "mixed")
    scan = scan_series(tmp_path / "mixed")
    by_uid = {s.uid: s for s in scan.series}
    assert set(by_uid) == {"1.2.3.10", "1.2.3.20"}
    img = read_image(tmp_path / "mixed", series="1.2.3.20")
    assert img.size == (8, 8, 3)
    idx = by_uid["1.2.3.10"].index
    assert read_image(tmp_path / "mixed", series=idx).size[2] == 4
    with pytest.raises(SeriesError, match="matches no series"):
        read_image(tmp_path / "mixed", series="9.9")


def test_empty_series_uid_groups_by_folder(make_series, tmp_path):
    make_series("root/a", n=3, series_uid="")
    make_series("root/b", n=4, series_uid="")
    scan = scan_series(tmp_path / "root")
    assert sorted(s.n_slices for s in scan.series) == [3, 4]
    assert all(s.uid.startswith("folder:") for s in scan.series)
    assert read_image(tmp_path / "root" / "b").size[2] == 4


def test_non_dicom_files_beside_series_are_ignored(make_series, tmp_path):
    make_series(n=3)
    (tmp_path / "series" / "README.txt").write_text("notes")
    (tmp_path / "series" / "thumbs.db").write_bytes(b"\x00" * 300)
    assert read_image(tmp_path / "series").size[2] == 3


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeriesError, match="no DICOM image series"):
        read_image(tmp_path / "empty")


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_corrupt_file_in_series_is_named(make_series, tmp_path):
    paths = make_series(n=4)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:140] + b"\xff" * 40)  # keeps the DICM preamble, breaks the rest
    with pytest.raises(ReadError) as info:
        read_image(tmp_path / "series")
    assert paths[2].name in str(info.value)


def test_truncated_pixel_data(make_series, tmp_path):
    paths = make_series(n=1, shape=(64, 64))
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) - 3000])
    with pytest.raises(ReadError, match=r"truncated|pixel data"):
        read_image(paths[0])


def test_a_compressed_file_cut_short_is_called_truncated(tmp_path):
    """pydicom returns an empty dataset for a JPEG-2000 file cut inside its pixel data."""
    from pydicom.data import get_testdata_file

    data = Path(get_testdata_file("RG3_J2KR.dcm")).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match="the file is truncated or damaged"):
        read_image(tmp_path / "cut.dcm")


def test_inputs_are_not_modified(make_series, tmp_path):
    paths = make_series(n=3)
    before = {p: p.read_bytes() for p in paths}
    read_image(tmp_path / "series")
    assert {p: p.read_bytes() for p in paths} == before


def test_float_rescale_gives_float64(make_series, tmp_path):
    make_series(n=2, slope=0.5, intercept=-10.0)
    img = read_image(tmp_path / "series")
    assert img.dtype == np.float64
    assert img.array[0, 0, 0] == pytest.approx(100 * 0.5 - 10.0)


def test_per_slice_rescale_is_applied_per_slice(make_series, tmp_path):
    paths = make_series(n=2, shuffle_names=False)
    ds = pydicom.dcmread(paths[1])
    ds.RescaleIntercept = "-2000"
    ds.save_as(paths[1])
    img = read_image(tmp_path / "series")
    assert img.array[0, 0, 0] == 100 - 1024
    assert img.array[1, 0, 0] == 200 - 2000


def test_monochrome1_is_inverted_by_default(make_series, tmp_path):
    paths = make_series(n=1, photometric="MONOCHROME1", intercept=0.0, modality="CR")
    raw = read_image(paths[0], invert_monochrome1=False)
    inv = read_image(paths[0])
    np.testing.assert_array_equal(inv.array.astype(int), 4095 - raw.array.astype(int))
    assert inv.metadata["inverted_monochrome1"] is True


def test_a_missing_or_zero_pixel_spacing_is_marked_unknown(make_series, tmp_path):
    paths = make_series(n=3, shuffle_names=False)
    assert read_image(paths[0]).spacing_known and read_image(tmp_path / "series").spacing_known
    for path in paths:  # as in real radiographs: "0\\0", or no spacing tag at all
        ds = pydicom.dcmread(path)
        ds.PixelSpacing = ["0", "0"]
        ds.save_as(path)
    one = read_image(paths[0])
    assert one.spacing[:2] == (1.0, 1.0) and not one.spacing_known
    series = read_image(tmp_path / "series")
    assert not series.spacing_known and series.spacing[2] == pytest.approx(2.5)
    ds = pydicom.dcmread(paths[0])
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = ["0.15", "0.15"]  # the detector's pixel size is a pixel size
    ds.save_as(paths[0])
    img = read_image(paths[0])
    assert img.spacing[:2] == pytest.approx((0.15, 0.15)) and img.spacing_known


def test_calibrated_and_detector_pixel_spacing_that_differ_are_named(tmp_path):
    """A radiograph with both: medlabel takes PixelSpacing (at the patient), SimpleITK takes
    ImagerPixelSpacing for projection classes; the reader says so rather than choose silently."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))  # Computed Radiography
    ds.PixelSpacing = ["0.143", "0.143"]
    ds.ImagerPixelSpacing = ["0.16", "0.16"]
    ds.save_as(tmp_path / "cr.dcm")
    img = read_image(tmp_path / "cr.dcm")
    assert img.spacing == pytest.approx((0.143, 0.143)) and img.spacing_known
    assert sitk.ReadImage(str(tmp_path / "cr.dcm")).GetSpacing()[:2] == pytest.approx((0.16, 0.16))
    (warning,) = img.metadata["warnings"]
    assert "at ImagerPixelSpacing 0.16\\0.16 (at the detector)" in warning
    ds.ImagerPixelSpacing = ["0.143", "0.143"]  # the same: nothing to say
    ds.save_as(tmp_path / "same.dcm")
    assert "warnings" not in read_image(tmp_path / "same.dcm").metadata
    del ds.ImagerPixelSpacing  # SimpleITK then reads 1 mm
    ds.save_as(tmp_path / "calibrated.dcm")
    img = read_image(tmp_path / "calibrated.dcm")
    assert sitk.ReadImage(str(tmp_path / "calibrated.dcm")).GetSpacing()[:2] == (1.0, 1.0)
    assert "at 1 mm (this file has no ImagerPixelSpacing)" in img.metadata["warnings"][0]
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture: ITK reads PixelSpacing
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(tmp_path / "sc.dcm")
    assert sitk.ReadImage(str(tmp_path / "sc.dcm")).GetSpacing()[:2] == pytest.approx((0.143,) * 2)
    assert "warnings" not in read_image(tmp_path / "sc.dcm").metadata


def test_single_file_keeps_position_in_space(ct_small):
    img = read_dicom(ct_small)
    ref = sitk.ReadImage(str(ct_small))
    assert_same_as_sitk(img, ref)


def test_patient_identifiers_stay_out_of_repr(make_series, tmp_path):
    make_series(n=2)
    img = read_image(tmp_path / "series")
    assert img.metadata["PatientID"] == "SYNTHETIC-PATIENT-42"
    assert "SYNTHETIC-PATIENT-42" not in repr(img)


def test_dicomdir_lists_and_reads_series(tmp_path):
    src = Path(pydicom.data.get_testdata_file("DICOMDIR")).parent
    dst = tmp_path / "dicomdirtests"
    shutil.copytree(src, dst)
    scan = scan_series(dst / "DICOMDIR")
    assert len(scan.series) == 24
    gated = [s for s in scan.series if s.description.startswith("SmartScore")]
    assert len(gated) == 1 and gated[0].n_slices == 5
    img = read_image(dst / "DICOMDIR", series=gated[0].uid)
    assert img.size[2] == 5 and img.spacing[2] == pytest.approx(2.5)
    assert_same_as_sitk(img, sitk_series(gated[0].folder))
    # this brain CT keeps 4 of its slices: 1 at -99.48 mm, 3 at 103-105.5 mm
    brain = next(s for s in scan.series if s.description == "Routine Brain")
    with pytest.raises(SliceSpacingError, match="missing slice"):
        read_image(dst / "DICOMDIR", series=brain.uid)


def _compress_rle(paths):
    from pydicom.uid import RLELossless

    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(p)


def test_compressed_series_decodes_in_worker_processes(make_series, tmp_path):
    plain = read_image(Path(make_series("plain", n=6)[0]).parent)
    paths = make_series("rle", n=6)
    _compress_rle(paths)
    assert scan_series(tmp_path / "rle").series[0].first.compressed
    img = read_dicom(tmp_path / "rle", workers=2)
    np.testing.assert_array_equal(img.array, plain.array)
    assert img.origin == plain.origin


def test_error_in_a_worker_process_names_the_file(make_series, tmp_path):
    paths = make_series("rle", n=6)
    _compress_rle(paths)
    ds = pydicom.dcmread(paths[3])
    ds.PixelData = ds.PixelData[:40]  # a broken RLE stream
    ds.save_as(paths[3])
    with pytest.raises(ReadError) as info:
        read_dicom(tmp_path / "rle", workers=2)
    assert paths[3].name in str(info.value)
