"""Tests of medlabel.preprocess.resample."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.resample import resample_to_reference, resample_to_spacing


def _gradient_value(index_xyz: np.ndarray) -> float:
    """The oblique_volume fixture's voxel value at a continuous ITK index."""
    i, j, k = index_xyz
    return 3 * i + 2 * j + k


def test_geometry_matches_simpleitk(oblique_volume: MedicalImage) -> None:
    new_spacing = (0.9, 1.3, 1.7)
    out = resample_to_spacing(oblique_volume, new_spacing)
    expected_size = [
        round(n * s / t)
        for n, s, t in zip(oblique_volume.size, oblique_volume.spacing, new_spacing, strict=True)
    ]
    assert list(out.size) == expected_size == [29, 11, 24]
    assert out.spacing == pytest.approx(new_spacing)
    assert out.origin == pytest.approx(oblique_volume.origin)
    assert out.direction == pytest.approx(oblique_volume.direction)
    assert (out.modality, out.metadata, out.dtype) == (
        "MR",
        {"SeriesDescription": "gradient"},
        np.float32,
    )
    ref = sitk.Resample(
        oblique_volume.to_sitk(),
        expected_size,
        sitk.Transform(),
        sitk.sitkLinear,
        oblique_volume.origin,
        new_spacing,
        oblique_volume.direction,
        0.0,
        sitk.sitkFloat32,
    )
    assert same_grid(out, MedicalImage.from_sitk(ref))
    inner = (slice(0, -2),) * 3  # away from the far edges (extrapolated there)
    np.testing.assert_allclose(out.array[inner], sitk.GetArrayFromImage(ref)[inner], atol=1e-4)


def test_world_points_keep_their_values(oblique_volume: MedicalImage) -> None:
    out = resample_to_spacing(oblique_volume, (0.6, 0.6, 1.0))
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(50):
        index = [int(rng.integers(0, n)) for n in out.size]
        world = out.index_to_world(index)
        old_index = oblique_volume.world_to_index(world)
        if np.any(old_index < 0) or np.any(old_index > np.asarray(oblique_volume.size) - 1):
            continue
        value = out.array[index[2], index[1], index[0]]
        assert value == pytest.approx(_gradient_value(old_index), abs=1e-3)
        checked += 1
    assert checked > 30


def test_integer_ct_keeps_dtype_with_rounding(ct_volume: MedicalImage) -> None:
    out = resample_to_spacing(ct_volume, (1.6, 1.8, 1.0), interpolation="bspline")
    assert out.dtype == np.int16
    assert out.size == (16, 16, 64)
    assert out.array.min() >= -1024 - 200 and out.array.max() <= 700 + 200  # mild overshoot only
    # the bone core stays bone at the centre of the field of view
    centre = out.world_to_index(ct_volume.index_to_world((15.5, 15.5, 15.5)))
    k, j, i = np.round(centre[::-1]).astype(int)
    assert out.array[k, j, i] == pytest.approx(700, abs=30)


def test_labels_use_nearest_and_keep_classes(label_volume: MedicalImage) -> None:
    out = resample_to_spacing(label_volume, (0.5, 0.5, 1.0))
    assert out.is_label and out.dtype == np.uint8
    assert set(np.unique(out.array)) == {0, 1, 2}
    # volume of each class is preserved approximately
    for cls in (1, 2):
        before = (label_volume.array == cls).sum() * np.prod(label_volume.spacing)
        after = (out.array == cls).sum() * np.prod(out.spacing)
        assert after == pytest.approx(before, rel=0.1)
    with pytest.raises(PreprocessError, match="label images use 'nearest'"):
        resample_to_spacing(label_volume, (1, 1, 1), interpolation="linear")


def test_multichannel_resampled_per_channel(rgb_image: MedicalImage) -> None:
    out = resample_to_spacing(rgb_image, (1.0, 1.0))
    assert out.array.shape == (16, 12, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out.array[..., 2], 77)
    single = resample_to_spacing(rgb_image.with_array(rgb_image.array[..., 0]), (1.0, 1.0))
    np.testing.assert_array_equal(out.array[..., 0], single.array)


def test_2d_upsampling_values(xray: MedicalImage) -> None:
    out = resample_to_spacing(xray, (0.1, 0.125))
    assert out.size == (80, 96) and out.dtype == np.uint16
    # new voxel (2, 0) sits at old index (1, 0): the x-ramp value there
    assert out.array[0, 2] == xray.array[0, 1]
    assert out.array[0, 1] == pytest.approx(
        (int(xray.array[0, 0]) + int(xray.array[0, 1])) / 2, abs=1
    )


def test_bad_requests(xray: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="2 spacing values"):
        resample_to_spacing(xray, (1, 1, 1))
    with pytest.raises(PreprocessError, match="positive"):
        resample_to_spacing(xray, (0, 1))
    with pytest.raises(PreprocessError, match="unknown interpolation 'cubic'"):
        resample_to_spacing(xray, (1, 1), interpolation="cubic")  # type: ignore[arg-type]


def test_resample_to_reference_grid_and_values(oblique_volume: MedicalImage) -> None:
    reference = MedicalImage(
        np.zeros((10, 12, 14), np.int16),
        spacing=(1.0, 1.0, 1.5),
        origin=tuple(oblique_volume.index_to_world((4, 3, 2))),
        direction=oblique_volume.direction,
    )
    out = resample_to_reference(oblique_volume, reference)
    assert same_grid(out, reference)
    assert out.dtype == np.float32 and out.modality == "MR"
    for index in [(0, 0, 0), (5, 7, 3), (13, 11, 9)]:
        old = oblique_volume.world_to_index(out.index_to_world(index))
        assert out.array[index[::-1]] == pytest.approx(_gradient_value(old), abs=1e-3)


def test_resample_to_reference_default_value(label_volume: MedicalImage) -> None:
    shifted = MedicalImage(
        np.zeros((32, 32, 32), np.uint8),
        spacing=label_volume.spacing,
        origin=(1000.0, 0.0, 0.0),
    )
    out = resample_to_reference(label_volume, shifted, default_value=255)
    assert out.is_label and out.dtype == np.uint8
    np.testing.assert_array_equal(out.array, 255)


def test_resample_to_reference_roundtrip_on_same_grid(ct_volume: MedicalImage) -> None:
    out = resample_to_reference(ct_volume, ct_volume)
    np.testing.assert_array_equal(out.array, ct_volume.array)
    with pytest.raises(PreprocessError, match="2D reference"):
        resample_to_reference(ct_volume, MedicalImage(np.zeros((4, 4)), spacing=(1, 1)))


def test_an_output_too_large_for_memory_is_refused_with_its_size(ct_volume: MedicalImage) -> None:
    # 0.8 x 0.9 x 2 mm to 0.001 mm: 25600 x 28800 x 64000 voxels, tens of terabytes
    with pytest.raises(PreprocessError) as caught:
        resample_to_spacing(ct_volume, (0.001, 0.001, 0.001))
    reason = caught.value.reason
    assert "25600 x 28800 x 64000 image" in reason
    assert "TB of memory" in reason and "is available" in reason


def test_memory_estimate_counts_the_working_copies() -> None:
    from medlabel.preprocess._common import check_output_memory

    # an int16 volume resampled linearly needs float32 twice plus the int16 result
    check_output_memory("resample", (100, 100, 10), 10, available=10 * 100 * 100 * 10)
    with pytest.raises(PreprocessError, match=r"100 x 100 x 10 image \(1e\+05 voxels\)"):
        check_output_memory("resample", (100, 100, 10), 10, available=10 * 100 * 100 * 10 - 1)
