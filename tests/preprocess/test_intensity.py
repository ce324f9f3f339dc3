"""Tests of medlabel.preprocess.intensity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.intensity import clip_intensity, percentile_scale, zscore


def test_zscore_whole_image(ct_volume: MedicalImage) -> None:
    out = zscore(ct_volume)
    assert out.dtype == np.float32
    assert same_grid(out, ct_volume)
    assert out.metadata == ct_volume.metadata and out.modality == "CT"
    assert float(out.array.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(out.array.std()) == pytest.approx(1.0, abs=1e-5)


def test_zscore_uses_mask_statistics(ct_volume: MedicalImage) -> None:
    body = ct_volume.array > -500
    out = zscore(ct_volume, mask=body)
    inside = ct_volume.array[body].astype(float)
    expected = (ct_volume.array.astype(float) - inside.mean()) / inside.std()
    np.testing.assert_allclose(out.array, expected, rtol=1e-5, atol=1e-5)
    assert float(out.array[body].mean()) == pytest.approx(0.0, abs=1e-5)
    # all voxels are transformed, not only the masked ones
    assert float(out.array[0, 0, 0]) < -1.0


def test_zscore_accepts_mask_image(ct_volume: MedicalImage) -> None:
    mask = ct_volume.with_array((ct_volume.array > -500).astype(np.uint8), is_label=True)
    np.testing.assert_array_equal(
        zscore(ct_volume, mask).array, zscore(ct_volume, mask.array.astype(bool)).array
    )


def test_zscore_constant_image_gives_zeros() -> None:
    img = MedicalImage(np.full((4, 5, 6), 7, np.uint8), spacing=(1, 1, 1))
    out = zscore(img)
    assert out.dtype == np.float32
    assert not np.isnan(out.array).any()
    np.testing.assert_array_equal(out.array, 0.0)


def test_zscore_ignores_nan_in_statistics() -> None:
    img = MedicalImage(np.array([[1.0, np.nan, 3.0]]), spacing=(1, 1))
    out = zscore(img).array
    np.testing.assert_allclose(out[0, [0, 2]], [-1.0, 1.0])
    assert np.isnan(out[0, 1])


def test_zscore_per_channel(rgb_image: MedicalImage) -> None:
    out = zscore(rgb_image)
    assert out.array.shape == rgb_image.array.shape
    for c in (0, 1):
        assert float(out.array[..., c].mean()) == pytest.approx(0.0, abs=1e-5)
        assert float(out.array[..., c].std()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(out.array[..., 2], 0.0)  # constant channel


def test_zscore_mask_errors(ct_volume: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="mask shape"):
        zscore(ct_volume, np.ones((3, 3, 3)))
    with pytest.raises(PreprocessError, match="inside the mask"):
        zscore(ct_volume, np.zeros(ct_volume.array.shape))


def test_percentile_scale_maps_percentiles() -> None:
    img = MedicalImage(np.arange(1000, dtype=np.int32).reshape(10, 100), spacing=(1, 1))
    out = percentile_scale(img, lower=1, upper=99)
    assert out.dtype == np.float32
    lo, hi = np.percentile(np.arange(1000), [1, 99])
    expected = np.clip((img.array - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out.array, expected, atol=1e-6)
    assert out.array.min() == 0.0 and out.array.max() == 1.0


def test_percentile_scale_without_clip_and_custom_range() -> None:
    img = MedicalImage(np.arange(101.0).reshape(1, 101), spacing=(1, 1))
    out = percentile_scale(img, lower=10, upper=90, out_range=(-1, 1), clip=False).array
    assert out[0, 10] == pytest.approx(-1.0)
    assert out[0, 90] == pytest.approx(1.0)
    assert out[0, 0] == pytest.approx(-1.25)
    assert out[0, 100] == pytest.approx(1.25)


def test_percentile_scale_with_mask(ct_volume: MedicalImage) -> None:
    body = ct_volume.array > -500
    out = percentile_scale(ct_volume, 0, 100, mask=body)
    # mask holds 40 and 700 HU only: air falls below the range and is clipped to 0
    assert float(out.array[0, 0, 0]) == 0.0
    assert float(out.array[16, 16, 16]) == 1.0
    assert float(out.array[16, 16, 5]) == 0.0  # 40 HU soft tissue is the mask minimum


def test_percentile_scale_constant_and_errors() -> None:
    img = MedicalImage(np.full((3, 3), 5.0), spacing=(1, 1))
    np.testing.assert_array_equal(percentile_scale(img, out_range=(2, 3)).array, 2.0)
    with pytest.raises(PreprocessError, match="lower < upper"):
        percentile_scale(img, lower=50, upper=50)
    with pytest.raises(PreprocessError, match="out_range"):
        percentile_scale(img, out_range=(1, 0))


def test_clip_keeps_dtype_and_geometry(ct_volume: MedicalImage) -> None:
    out = clip_intensity(ct_volume, -100, 100)
    assert out.dtype == np.int16
    assert same_grid(out, ct_volume)
    assert out.array.min() == -100 and out.array.max() == 100
    assert ct_volume.array.min() == -1000  # input untouched


def test_clip_integer_bounds_rounded_inwards_and_out_of_range() -> None:
    img = MedicalImage(np.array([[0, 5, 250]], np.uint8), spacing=(1, 1))
    assert clip_intensity(img, 1.5, 9.5).array.tolist() == [[2, 5, 9]]
    out = clip_intensity(img, -1000, 1000)
    assert out.dtype == np.uint8 and out.array.tolist() == [[0, 5, 250]]
    assert clip_intensity(img, None, 4).array.tolist() == [[0, 4, 4]]


def test_clip_float_and_errors() -> None:
    img = MedicalImage(np.array([[-2.5, 0.0, 2.5]], np.float32), spacing=(1, 1))
    out = clip_intensity(img, -1, None)
    assert out.dtype == np.float32 and out.array.tolist() == [[-1.0, 0.0, 2.5]]
    with pytest.raises(PreprocessError, match="low <= high"):
        clip_intensity(img, 2, 1)
    with pytest.raises(PreprocessError):
        clip_intensity(img, None, None)


@pytest.mark.parametrize("fn", [zscore, percentile_scale, lambda im: clip_intensity(im, 0, 1)])
def test_label_images_refused(
    label_volume: MedicalImage, fn: Callable[[MedicalImage], MedicalImage]
) -> None:
    with pytest.raises(PreprocessError, match="label image"):
        fn(label_volume)
