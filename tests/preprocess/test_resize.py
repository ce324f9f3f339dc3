"""Tests of medlabel.preprocess.resize."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess.resize import resize


def _fov_corners(image: MedicalImage) -> np.ndarray:
    """World positions of the outer corners of the field of view (voxel edges, not centres)."""
    corners = []
    for bits in np.ndindex(*(2,) * image.ndim):
        index = [-0.5 if b == 0 else n - 0.5 for b, n in zip(bits, image.size, strict=True)]
        corners.append(image.index_to_world(index))
    return np.array(corners)


def test_resize_2d_keeps_field_of_view(xray: MedicalImage) -> None:
    out = resize(xray, (64, 64))
    assert out.size == (64, 64)
    assert out.dtype == np.uint16 and out.modality == "DX"
    assert out.spacing == pytest.approx((0.2 * 40 / 64, 0.25 * 48 / 64))
    np.testing.assert_allclose(_fov_corners(out), _fov_corners(xray), atol=1e-9)
    assert out.direction == xray.direction


def test_resize_oblique_3d_keeps_corners(oblique_volume: MedicalImage) -> None:
    out = resize(oblique_volume, (12, 30, 8))
    np.testing.assert_allclose(_fov_corners(out), _fov_corners(oblique_volume), atol=1e-9)
    # linear content: a world point inside keeps (approximately) its value when upsampling
    up = resize(oblique_volume, (48, 40, 32), anti_alias=False)
    for index in [(10, 10, 10), (30, 25, 20), (47, 39, 31)]:
        old = oblique_volume.world_to_index(up.index_to_world(index))
        old = np.clip(old, 0, np.asarray(oblique_volume.size) - 1)
        assert up.array[index[::-1]] == pytest.approx(3 * old[0] + 2 * old[1] + old[2], abs=1e-3)


def test_downsampling_is_anti_aliased() -> None:
    checker = ((np.indices((60, 60)).sum(axis=0) % 2) * 200).astype(np.float32)
    img = MedicalImage(checker, spacing=(1, 1))
    # factor 5: new voxel centres fall exactly on old voxel centres 2, 7, 12, ...
    smooth = resize(img, (12, 12))
    raw = resize(img, (12, 12), anti_alias=False)
    assert float(smooth.array.std()) < 10.0  # the checkerboard averages out to ~100
    assert float(smooth.array.mean()) == pytest.approx(100.0, abs=5)
    assert float(raw.array.std()) > 90.0  # aliasing without the filter: a coarse checkerboard


def test_resize_labels_nearest_dtype_kept(label_volume: MedicalImage) -> None:
    out = resize(label_volume, (16, 16, 16))
    assert out.is_label and out.dtype == np.uint8
    assert set(np.unique(out.array)) <= {0, 1, 2}
    assert (out.array == 2).any()
    np.testing.assert_allclose(_fov_corners(out), _fov_corners(label_volume), atol=1e-9)
    with pytest.raises(PreprocessError, match="label images use 'nearest'"):
        resize(label_volume, (8, 8, 8), interpolation="bspline")


def test_resize_rgb_per_channel(rgb_image: MedicalImage) -> None:
    out = resize(rgb_image, (48, 64), interpolation="bspline")
    assert out.array.shape == (64, 48, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out.array[..., 2], 77)
    red = resize(rgb_image.with_array(rgb_image.array[..., 0]), (48, 64), interpolation="bspline")
    np.testing.assert_array_equal(out.array[..., 0], red.array)


def test_resize_integer_identity(xray: MedicalImage) -> None:
    out = resize(xray, xray.size)
    np.testing.assert_array_equal(out.array, xray.array)
    assert out.origin == pytest.approx(xray.origin) and out.spacing == pytest.approx(xray.spacing)


def test_resize_bad_size(xray: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="2 sizes"):
        resize(xray, (10, 10, 10))
    with pytest.raises(PreprocessError, match="sizes >= 1"):
        resize(xray, (0, 10))


def test_a_one_slice_volume_is_resized_in_plane_with_two_sizes() -> None:
    # a single CT or MR DICOM slice reads as a 512 x 512 x 1 volume
    yy, xx = np.mgrid[:64, :48]
    one = MedicalImage(
        (xx * 10 + yy).astype(np.int16)[None],
        spacing=(0.5, 0.4, 5.0),
        origin=(-10.0, 20.0, 47.0),
        modality="CT",
    )
    out = resize(one, (24, 32))
    assert out.size == (24, 32, 1) and out.dtype == np.int16 and out.modality == "CT"
    assert out.spacing == pytest.approx((1.0, 0.8, 5.0))
    np.testing.assert_allclose(_fov_corners(out), _fov_corners(one), atol=1e-9)
    # the same as resizing the slice as a 2D image
    flat = resize(MedicalImage(one.array[0], spacing=(0.5, 0.4), origin=(-10.0, 20.0)), (24, 32))
    np.testing.assert_array_equal(out.array[0], flat.array)
    assert resize(one, (24, 32, 1)).size == (24, 32, 1)


def test_two_sizes_for_a_volume_explain_what_they_are_for(ct_volume: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match=r"3 sizes .* 32 slices.*one-slice volume"):
        resize(ct_volume, (16, 16))


def test_a_resize_too_large_for_memory_is_refused_before_it_starts(xray: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match=r"200000 x 200000 image .* of memory"):
        resize(xray, (200_000, 200_000))
