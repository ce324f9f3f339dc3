"""Tests of medlabel.preprocess.bias."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.bias import n4_bias_correction


@pytest.fixture
def biased_mr(make_ball: Callable[..., np.ndarray]) -> tuple[MedicalImage, np.ndarray]:
    """32^3 MR phantom (two tissues) times a smooth multiplicative field, and its region."""
    shape = (32, 32, 32)
    outer = make_ball(shape, (15.5, 15.5, 15.5), 12)
    core = make_ball(shape, (15.5, 15.5, 15.5), 5)
    tissue = np.where(outer, 100.0, 0.0)
    tissue[core] = 150.0
    z, y, x = np.mgrid[:32, :32, :32].astype(float)
    field = np.exp(0.4 * (x - 15.5) / 15.5 + 0.2 * (y - 15.5) / 15.5 - 0.1 * (z - 15.5) / 15.5)
    noise = np.random.default_rng(0).normal(0, 1.0, shape) * outer
    arr = (tissue * field + noise).astype(np.float32)
    img = MedicalImage(
        arr, spacing=(1.2, 1.0, 2.0), origin=(3, 4, 5), modality="MR", metadata={"k": "v"}
    )
    region = outer & ~make_ball(shape, (15.5, 15.5, 15.5), 7)  # homogeneous shell of tissue 1
    return img, region


def _cv(arr: np.ndarray, region: np.ndarray) -> float:
    values = arr[region].astype(float)
    return float(values.std() / values.mean())


def test_n4_removes_smooth_field(biased_mr: tuple[MedicalImage, np.ndarray]) -> None:
    img, region = biased_mr
    before = _cv(img.array, region)
    out = n4_bias_correction(img)
    assert out.dtype == np.float32
    assert same_grid(out, img)
    assert (out.modality, out.metadata) == ("MR", {"k": "v"})
    after = _cv(out.array, region)
    assert before > 0.1
    assert after < 0.3 * before
    # contrast between the two tissues survives
    core = out.array[14:18, 14:18, 14:18].mean()
    assert core / out.array[region].mean() == pytest.approx(1.5, rel=0.1)


def test_n4_with_explicit_mask_and_2d(biased_mr: tuple[MedicalImage, np.ndarray]) -> None:
    img, region = biased_mr
    mask = img.with_array((img.array > 20).astype(np.uint8), is_label=True)
    out = n4_bias_correction(img, mask=mask, shrink_factor=2, iterations=(20, 20))
    assert _cv(out.array, region) < 0.3 * _cv(img.array, region)

    slice2d = MedicalImage(img.array[16], spacing=(1.2, 1.0), modality="MR")
    out2d = n4_bias_correction(slice2d, shrink_factor=2, iterations=(30, 30))
    assert out2d.size == slice2d.size
    assert _cv(out2d.array, region[16]) < 0.5 * _cv(slice2d.array, region[16])


def test_n4_input_untouched(biased_mr: tuple[MedicalImage, np.ndarray]) -> None:
    img, _ = biased_mr
    before = img.array.copy()
    n4_bias_correction(img, shrink_factor=4, iterations=(5,))
    np.testing.assert_array_equal(img.array, before)


def test_n4_errors(biased_mr: tuple[MedicalImage, np.ndarray], rgb_image: MedicalImage) -> None:
    img, _ = biased_mr
    with pytest.raises(PreprocessError, match="no positive voxels"):
        n4_bias_correction(img, mask=np.zeros(img.array.shape))
    with pytest.raises(PreprocessError, match="iterations"):
        n4_bias_correction(img, iterations=())
    with pytest.raises(PreprocessError, match="shrink_factor"):
        n4_bias_correction(img, shrink_factor=0)
    with pytest.raises(PreprocessError, match="single-channel"):
        n4_bias_correction(rgb_image)
    with pytest.raises(PreprocessError, match="label image"):
        n4_bias_correction(img.with_array(img.array.astype(np.uint8), is_label=True))
