"""Tests of medlabel.preprocess.denoise."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.denoise import (
    anisotropic_diffusion,
    denoise,
    estimate_noise_sigma,
    gaussian_smooth,
    median_filter,
    nl_means,
)


@pytest.fixture
def noisy_step() -> tuple[MedicalImage, np.ndarray]:
    """2D step edge (0 / 1000) with Gaussian noise of sigma 60, and the clean image."""
    clean = np.where(np.arange(40) < 20, 0.0, 1000.0) * np.ones((36, 1))
    noisy = clean + np.random.default_rng(7).normal(0, 60, clean.shape)
    img = MedicalImage(noisy, spacing=(0.5, 0.5), origin=(1, 2), modality="CT")
    return img, clean


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_gaussian_sigma_is_in_millimetres() -> None:
    rng = np.random.default_rng(0)
    arr = rng.random((24, 24, 24))
    spacing = (0.8, 1.0, 2.0)  # x, y, z
    out = gaussian_smooth(MedicalImage(arr, spacing=spacing), sigma_mm=2.0)
    assert out.dtype == np.float32
    # sigma in voxels, array order z, y, x
    ref = ndimage.gaussian_filter(arr, sigma=[2.0 / 2.0, 2.0 / 1.0, 2.0 / 0.8], mode="nearest")
    inner = (slice(6, -6),) * 3
    np.testing.assert_allclose(out.array[inner], ref[inner], atol=2e-3)


def test_gaussian_keeps_geometry_and_metadata(ct_volume: MedicalImage) -> None:
    out = gaussian_smooth(ct_volume, 1.5)
    assert out.dtype == np.float32
    assert same_grid(out, ct_volume)
    assert out.metadata == ct_volume.metadata and out.modality == "CT"
    assert float(out.array.mean()) == pytest.approx(float(ct_volume.array.mean()), rel=0.02)


def test_gaussian_zero_sigma_and_per_axis(xray: MedicalImage) -> None:
    np.testing.assert_array_equal(gaussian_smooth(xray, 0.0).array, xray.array.astype(np.float32))
    # smoothing only along y leaves a pure x-ramp row profile unchanged away from the disc
    out = gaussian_smooth(xray, (0.0, 1.0)).array
    np.testing.assert_allclose(out[40, :], xray.array[40, :], atol=0.5)
    with pytest.raises(PreprocessError, match="sigma_mm"):
        gaussian_smooth(xray, -1.0)
    with pytest.raises(PreprocessError, match="needs 2 values"):
        gaussian_smooth(xray, (1.0, 1.0, 1.0))


def test_gaussian_tiny_image_uses_discrete_kernel() -> None:
    arr = np.zeros((3, 9))
    arr[1, 4] = 1.0
    out = gaussian_smooth(MedicalImage(arr, spacing=(1, 1)), 1.0).array
    assert out.shape == (3, 9)
    assert 0 < out[1, 4] < 1 and out[1, 3] > 0


def test_gaussian_rgb_per_channel(rgb_image: MedicalImage) -> None:
    out = gaussian_smooth(rgb_image, 1.0)
    assert out.array.shape == rgb_image.array.shape
    np.testing.assert_allclose(out.array[..., 2], 77.0, atol=1e-3)


def test_median_removes_salt_noise_keeps_dtype(ct_volume: MedicalImage) -> None:
    arr = ct_volume.array.copy()
    arr[5, 5, 5] = 3000  # isolated hot voxel in air
    img = ct_volume.with_array(arr)
    out = median_filter(img, radius=1)
    assert out.dtype == np.int16
    assert same_grid(out, ct_volume)
    assert out.array[5, 5, 5] == -1000
    assert arr[5, 5, 5] == 3000  # input untouched
    ref = sitk.GetArrayFromImage(sitk.Median(img.to_sitk(), [1, 1, 1]))
    np.testing.assert_array_equal(out.array, ref)


def test_median_radius_per_axis_and_errors() -> None:
    arr = np.ones((5, 6), np.uint8)
    arr[2, :] = 9  # a line along x
    img = MedicalImage(arr, spacing=(1, 1))
    np.testing.assert_array_equal(median_filter(img, radius=(1, 0)).array, arr)  # along x
    np.testing.assert_array_equal(median_filter(img, radius=(0, 1)).array, 1)  # along y
    with pytest.raises(PreprocessError, match="radius"):
        median_filter(img, radius=-1)
    with pytest.raises(PreprocessError, match="radius"):
        median_filter(img, radius=1.5)
    with pytest.raises(PreprocessError, match="needs 2 values"):
        median_filter(img, radius=(1, 1, 1))


def test_noise_sigma_estimate_in_image_units() -> None:
    rng = np.random.default_rng(4)
    smooth = np.add.outer(np.linspace(0, 500, 48), np.linspace(0, 300, 48))
    for sigma in (5.0, 40.0):
        est = estimate_noise_sigma(smooth + rng.normal(0, sigma, smooth.shape))
        assert est == pytest.approx(sigma, rel=0.15)
    vol = rng.normal(0, 3.0, (16, 16, 16))
    assert estimate_noise_sigma(vol) == pytest.approx(3.0, rel=0.15)


def test_nl_means_reduces_noise_keeps_scale(noisy_step: tuple[MedicalImage, np.ndarray]) -> None:
    img, clean = noisy_step
    out = nl_means(img)
    assert out.dtype == np.float32
    assert same_grid(out, img)
    assert _rmse(out.array, clean) < 0.5 * _rmse(img.array, clean)
    # edge still sharp: the jump across the step stays close to 1000 HU
    jump = out.array[:, 21:24].mean() - out.array[:, 16:19].mean()
    assert jump == pytest.approx(1000, rel=0.05)


def test_nl_means_h_in_image_units(noisy_step: tuple[MedicalImage, np.ndarray]) -> None:
    img, _ = noisy_step
    weak = nl_means(img, h=5.0)
    strong = nl_means(img, h=100.0)
    assert _rmse(strong.array, img.array) > 1.1 * _rmse(weak.array, img.array)
    # h is in the image's units: scaling image and h together scales the result
    scaled = nl_means(img.with_array(img.array * 10.0), h=1000.0)
    np.testing.assert_allclose(scaled.array, strong.array * 10.0, rtol=1e-3, atol=0.5)
    with pytest.raises(PreprocessError, match="h must be positive"):
        nl_means(img, h=0.0)


def test_nl_means_3d_small() -> None:
    rng = np.random.default_rng(5)
    clean = np.zeros((12, 12, 12))
    clean[:, :, 6:] = 100.0
    img = MedicalImage(clean + rng.normal(0, 8, clean.shape), spacing=(1, 1, 1))
    out = nl_means(img, patch_size=3, patch_distance=2)
    assert _rmse(out.array, clean) < 0.7 * _rmse(img.array, clean)


def test_gaussian_default_sigma_is_one_fine_voxel(xray: MedicalImage) -> None:
    # the CLI's `--denoise gaussian` passes no sigma: it must work, at the finest spacing
    np.testing.assert_array_equal(
        denoise(xray, "gaussian").array, gaussian_smooth(xray, min(xray.spacing)).array
    )
    assert float(denoise(xray, "gaussian").array.std()) < float(xray.array.std())


def _thick_slice_volume(seed: int = 3) -> tuple[MedicalImage, np.ndarray]:
    """Noisy 6 x 40 x 40 volume of 0.8 x 0.8 x 6 mm voxels: a disc that changes per slice."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    clean = np.stack(
        [1000.0 * ((yy - 20) ** 2 + (xx - 20) ** 2 < (6 + 2 * k) ** 2) for k in range(6)]
    )
    img = MedicalImage(clean + rng.normal(0, 60, clean.shape), spacing=(0.8, 0.8, 6.0))
    return img, clean


def test_nl_means_filters_thick_slices_one_by_one() -> None:
    img, clean = _thick_slice_volume()
    out = nl_means(img)
    # the same as filtering each slice as a 2D image, at the volume's noise level
    by_hand = nl_means(img, slicewise=True)
    np.testing.assert_array_equal(out.array, by_hand.array)
    assert not np.array_equal(out.array, nl_means(img, slicewise=False).array)
    assert _rmse(out.array, clean) < 0.5 * _rmse(img.array, clean)
    # a one-slice volume (a single CT or MR DICOM file) is a 2D image too
    one = img.with_array(img.array[2:3])
    np.testing.assert_allclose(
        nl_means(one).array[0],
        nl_means(MedicalImage(img.array[2], spacing=(0.8, 0.8))).array,
        atol=1e-3,
    )


def test_nl_means_isotropic_volume_stays_3d() -> None:
    img, _ = _thick_slice_volume()
    iso = img.with_array(img.array, spacing=(0.8, 0.8, 0.8))
    # 3D search radius 3 by default (7^3 patches, not 13^3), 6 for 2D filtering
    np.testing.assert_array_equal(
        nl_means(iso).array, nl_means(iso, patch_distance=3, slicewise=False).array
    )
    np.testing.assert_array_equal(
        nl_means(img).array, nl_means(img, patch_distance=6, slicewise=True).array
    )
    assert not np.array_equal(
        nl_means(iso, patch_size=3, patch_distance=2).array,
        nl_means(iso, patch_size=3, patch_distance=2, slicewise=True).array,
    )


def test_anisotropic_default_time_step_is_stable(noisy_step: tuple[MedicalImage, np.ndarray]):
    img, clean = noisy_step
    out = anisotropic_diffusion(img, iterations=10, conductance=1.0)
    assert out.dtype == np.float32 and same_grid(out, img)
    assert np.isfinite(out.array).all()
    assert _rmse(out.array, clean) < 0.8 * _rmse(img.array, clean)
    jump = out.array[:, 22:25].mean() - out.array[:, 15:18].mean()
    assert jump == pytest.approx(1000, rel=0.05)


def test_anisotropic_3d_and_errors(ct_volume: MedicalImage) -> None:
    out = anisotropic_diffusion(ct_volume, iterations=2)
    assert out.array.shape == ct_volume.array.shape and out.dtype == np.float32
    with pytest.raises(PreprocessError, match="iterations"):
        anisotropic_diffusion(ct_volume, iterations=0)
    with pytest.raises(PreprocessError, match="time_step"):
        anisotropic_diffusion(ct_volume, time_step=-0.1)


def test_dispatcher_matches_direct_calls(xray: MedicalImage) -> None:
    np.testing.assert_array_equal(
        denoise(xray, "gaussian", sigma_mm=0.5).array, gaussian_smooth(xray, 0.5).array
    )
    np.testing.assert_array_equal(
        denoise(xray, "median", radius=2).array, median_filter(xray, 2).array
    )


@pytest.mark.parametrize(
    ("method", "params", "match"),
    [
        ("wiener", {}, "unknown denoise method 'wiener'"),
        ("gaussian", {"radius": 1}, "radius"),
        ("median", {"sigma_mm": 1.0}, "sigma_mm"),
    ],
)
def test_dispatcher_errors(xray: MedicalImage, method: str, params: dict, match: str) -> None:
    with pytest.raises(PreprocessError, match=match):
        denoise(xray, method, **params)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["gaussian", "median", "nlm", "anisotropic"])
def test_denoise_refuses_labels(label_volume: MedicalImage, method: str) -> None:
    params = {"sigma_mm": 1.0} if method == "gaussian" else {}
    with pytest.raises(PreprocessError, match="label image"):
        denoise(label_volume, method, **params)  # type: ignore[arg-type]
