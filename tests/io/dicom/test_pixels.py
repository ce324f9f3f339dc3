"""Pixel decoding: compressed transfer syntaxes, enhanced multi-frame, SEG, colour, rescale.

Uses the sample files of the pydicom-data wheel, a dependency of medlabel, so these tests
always run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from medlabel.io import read_image
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
