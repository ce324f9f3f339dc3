"""Tests of medlabel.preprocess.enhance."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.enhance import clahe, equalize_histogram


def _local_contrast(arr: np.ndarray) -> float:
    return float(np.abs(np.diff(arr, axis=-1)).mean())


def test_clahe_2d_range_dtype_and_contrast(xray: MedicalImage) -> None:
    rng = np.random.default_rng(1)
    arr = xray.array.astype(float) + rng.normal(0, 20, xray.array.shape)
    img = xray.with_array(arr)
    out = clahe(img, clip_limit=0.02)
    assert out.dtype == np.float32
    assert same_grid(out, xray) and out.modality == "DX"
    assert float(out.array.min()) >= 0.0 and float(out.array.max()) <= 1.0
    unit = (arr - arr.min()) / (arr.max() - arr.min())
    assert _local_contrast(out.array) > 1.5 * _local_contrast(unit)


def test_clahe_3d(ct_volume: MedicalImage) -> None:
    out = clahe(ct_volume, kernel_size=8)
    assert out.array.shape == ct_volume.array.shape
    assert out.dtype == np.float32
    assert float(out.array.min()) >= 0.0 and float(out.array.max()) <= 1.0
    # ordering of tissue classes survives: bone > soft tissue > air
    assert out.array[16, 16, 16] > out.array[16, 16, 8] > out.array[0, 0, 0]


def test_clahe_kernel_size_in_itk_order() -> None:
    rng = np.random.default_rng(2)
    arr = rng.random((16, 40))  # y=16, x=40
    img = MedicalImage(arr, spacing=(1, 1))
    out = clahe(img, kernel_size=(10, 4)).array  # x=10, y=4: valid for this shape
    assert out.shape == (16, 40)
    with pytest.raises(PreprocessError, match="kernel_size"):
        clahe(img, kernel_size=(4, 4, 4))
    with pytest.raises(PreprocessError, match="kernel_size"):
        clahe(img, kernel_size=0)


def test_clahe_constant_and_bad_clip_limit() -> None:
    img = MedicalImage(np.full((16, 16), 300, np.int16), spacing=(1, 1))
    np.testing.assert_array_equal(clahe(img).array, 0.0)
    with pytest.raises(PreprocessError, match="clip_limit"):
        clahe(img, clip_limit=0)


def test_clahe_rgb_per_channel(rgb_image: MedicalImage) -> None:
    out = clahe(rgb_image)
    assert out.array.shape == rgb_image.array.shape
    single = clahe(rgb_image.with_array(rgb_image.array[..., 1]))
    np.testing.assert_allclose(out.array[..., 1], single.array)


def test_equalize_histogram_flattens_histogram() -> None:
    rng = np.random.default_rng(3)
    arr = rng.exponential(50.0, (64, 64))  # heavily skewed
    out = equalize_histogram(MedicalImage(arr, spacing=(1, 1)))
    assert out.dtype == np.float32
    counts, _ = np.histogram(out.array, bins=4, range=(0, 1))
    assert counts.min() > 0.7 * counts.max()  # roughly uniform quartiles
    # monotone mapping: order of voxels kept
    order = np.argsort(arr.ravel())
    assert np.all(np.diff(out.array.ravel()[order]) >= 0)


def test_equalize_histogram_3d_and_errors(ct_volume: MedicalImage) -> None:
    out = equalize_histogram(ct_volume)
    assert same_grid(out, ct_volume)
    assert float(out.array.max()) == 1.0
    with pytest.raises(PreprocessError, match="nbins"):
        equalize_histogram(ct_volume, nbins=1)


def test_enhance_refuses_labels(label_volume: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="label image"):
        clahe(label_volume)
    with pytest.raises(PreprocessError, match="label image"):
        equalize_histogram(label_volume)
