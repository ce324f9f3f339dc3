"""Correctness bar: every real image in ../shared/data reads exactly as SimpleITK reads it.

Size, spacing, origin and direction (to 1e-6) and voxel values (exactly) are compared with
SimpleITK for the real DICOM series, NIfTI and NRRD volumes, single DICOM files and PNG/JPEG
exports. Two documented exceptions are checked for physical equivalence instead (see
``EXPLAINED``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.io import read_image

pytestmark = pytest.mark.realdata

# Files where SimpleITK's answer is not the reference, and what is compared instead.
EXPLAINED = {
    # GDCM gives this enhanced CT a left-handed frame; medlabel sorts frames along the
    # normal. Checked voxel by voxel through world coordinates in test_pixels.py.
    "eCT_Supplemental.dcm": "same physical volume, right-handed frame",
    # DICOM SEG: GDCM shows segment pixels as 255; medlabel returns segment numbers.
    "liver.dcm": "label map: segment numbers where SimpleITK has 255",
}


def sitk_read(path: Path) -> sitk.Image:
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def test_reads_exactly_like_simpleitk(skip_without_data: Path) -> None:
    path = skip_without_data
    img = read_image(path)
    ref = sitk_read(path)
    ref_arr = sitk.GetArrayFromImage(ref)
    n = img.ndim
    ref_dim = ref.GetDimension()
    if n == 2 and ref_dim == 3:  # SimpleITK shows a lone 2D radiograph as one 3D slice
        assert ref.GetSize()[2] == 1
        ref_arr = ref_arr[0]
    assert img.size == ref.GetSize()[:n]
    np.testing.assert_allclose(img.spacing, ref.GetSpacing()[:n], rtol=1e-9, atol=1e-9)
    ref_dir = np.asarray(ref.GetDirection()).reshape(ref_dim, ref_dim)[:n, :n]
    if path.name in EXPLAINED:
        assert img.modality in ("CT", "SEG")
        if path.name == "liver.dcm":
            np.testing.assert_array_equal(img.array > 0, ref_arr > 0)
        return
    np.testing.assert_allclose(img.origin, ref.GetOrigin()[:n], rtol=0, atol=1e-6)
    np.testing.assert_allclose(img.direction_matrix, ref_dir, rtol=0, atol=1e-6)
    if img.channels == 0 and ref.GetNumberOfComponentsPerPixel() == 3:
        # a grey JPEG stored as RGB: medlabel keeps one channel since all three are equal
        assert np.array_equal(ref_arr[..., 0], ref_arr[..., 2])
        ref_arr = ref_arr[..., 0]
    assert img.array.shape == ref_arr.shape
    assert img.array.dtype == ref_arr.dtype
    np.testing.assert_array_equal(img.array, ref_arr)


def test_a_las_mask_of_an_lps_series_is_reordered_exactly_like_simpleitk_resampling(
    shared_data: Path,
) -> None:
    """TotalSegmentator stored the series' labels as LAS NIfTI; the DICOM series reads LPS.
    ``read_label(reference=)`` reorders them without interpolation, voxel for voxel what
    SimpleITK's nearest-neighbour resampling onto the series gives."""
    from medlabel.io import read_label

    folder = shared_data / "ct-abdomen"
    ct = read_image(folder / "dicom-series")
    seg_path = folder / "dicom-series-seg.nii.gz"
    mask = read_label(seg_path, reference=ct)
    assert mask.size == ct.size and mask.origin == ct.origin and mask.direction == ct.direction
    reader = sitk.ImageSeriesReader()
    reference = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(folder / "dicom-series")))
    resampled = sitk.Resample(
        sitk.ReadImage(str(seg_path)), reference, sitk.Transform(), sitk.sitkNearestNeighbor
    )
    expected = sitk.GetArrayFromImage(resampled)
    assert expected.any()
    np.testing.assert_array_equal(mask.array, expected)
