"""Noise reduction: Gaussian, median, non-local means and curvature anisotropic diffusion.

All filters work on 2D and 3D images and process colour images channel by channel. Gaussian
widths are given in millimetres so the same setting means the same thing at any resolution.
:func:`denoise` picks a filter by name, which is how a :class:`~medlabel.preprocess.Pipeline`
stores it.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.zeros((5, 5), np.float32), spacing=(0.5, 0.5))
    >>> img.array[2, 2] = 9.0
    >>> float(denoise(img, "median", radius=1).array.max())
    0.0
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk
from skimage.restoration import denoise_nl_means

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import (
    from_sitk_like,
    map_channel_images,
    map_channels,
    per_axis,
    require_intensity,
)

__all__ = [
    "ANISOTROPY_FOR_SLICES",
    "DENOISE_METHODS",
    "anisotropic_diffusion",
    "check_denoise_params",
    "denoise",
    "estimate_noise_sigma",
    "gaussian_smooth",
    "median_filter",
    "nl_means",
]


def _float_sitk(image: MedicalImage) -> sitk.Image:
    """Scalar image as a float32 SimpleITK image."""
    return image.with_array(image.array.astype(np.float32)).to_sitk()


def gaussian_smooth(
    image: MedicalImage, sigma_mm: float | Sequence[float] | None = None
) -> MedicalImage:
    """Gaussian smoothing with the width given in millimetres (spacing-aware).

    Uses SimpleITK's recursive Gaussian, or a discrete kernel for images with fewer than
    4 voxels along an axis (where the recursive filter is not defined).

    Args:
        image: intensity image; colour images are smoothed channel by channel.
        sigma_mm: standard deviation in mm, one value or one per axis in ITK order. ``0``
            returns an unsmoothed float copy. ``None`` (the default) uses the finest voxel
            spacing on every axis: one voxel's width in-plane, a light smoothing that suits
            any resolution.

    Returns:
        A float32 image on the same grid.

    Raises:
        PreprocessError: label image or negative sigma.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.zeros((21, 21)), spacing=(0.5, 0.5))
        >>> img.array[10, 10] = 1.0  # sigma 1 mm = 2 voxels: peak 1 / (2 pi 2^2) = 0.04
        >>> out = gaussian_smooth(img, sigma_mm=1.0).array
        >>> round(float(out.sum()), 2), round(float(out[10, 10]), 2)
        (1.0, 0.04)
        >>> round(float(gaussian_smooth(img).array[10, 10]), 2)  # default: 0.5 mm, 1 voxel
        0.16
    """
    require_intensity(image, "gaussian_smooth")
    if sigma_mm is None:
        sigma_mm = float(min(image.spacing))
    sigma = np.asarray(per_axis(sigma_mm, image.ndim, "gaussian_smooth sigma_mm"))
    if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise PreprocessError(None, f"gaussian_smooth sigma_mm must be >= 0, got {sigma_mm}")

    def one(channel: MedicalImage) -> MedicalImage:
        src = _float_sitk(channel)
        if not np.any(sigma > 0):
            return from_sitk_like(src, channel)
        if min(channel.size) >= 4 and np.all(sigma > 0):
            out = sitk.SmoothingRecursiveGaussian(src, sigma.tolist())
        else:
            out = sitk.DiscreteGaussian(
                src, (sigma**2).tolist(), maximumKernelWidth=256, useImageSpacing=True
            )
        return from_sitk_like(out, channel)

    return map_channel_images(image, one)


def median_filter(image: MedicalImage, radius: int | Sequence[int] = 1) -> MedicalImage:
    """Median filter over a box of ``2 * radius + 1`` voxels per axis (SimpleITK ``Median``).

    Args:
        image: intensity image; colour images are filtered channel by channel.
        radius: half-width in voxels, one value or one per axis in ITK order.

    Returns:
        The filtered image on the same grid, with the input's dtype.

    Raises:
        PreprocessError: label image or negative radius.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.array([[1, 9, 1, 1]], np.uint8), spacing=(1, 1))
        >>> median_filter(img, radius=(1, 0)).array.tolist()
        [[1, 1, 1, 1]]
    """
    require_intensity(image, "median_filter")
    radii = np.asarray(per_axis(radius, image.ndim, "median_filter radius"))
    if np.any(radii < 0) or np.any(radii != np.round(radii)):
        raise PreprocessError(None, f"median_filter radius must be whole voxels >= 0: {radius}")
    radii_list = [int(r) for r in radii]
    arr = image.array
    work_dtype = np.dtype(np.float32) if arr.dtype == np.float16 else arr.dtype

    def one(channel: MedicalImage) -> MedicalImage:
        src = channel.with_array(channel.array.astype(work_dtype)).to_sitk()
        out = from_sitk_like(sitk.Median(src, radii_list), channel)
        return out.with_array(out.array.astype(arr.dtype, copy=False))

    return map_channel_images(image, one)


def estimate_noise_sigma(array: np.ndarray) -> float:
    """Robust estimate of white-noise standard deviation (Donoho's wavelet MAD).

    Uses the finest diagonal Haar detail coefficients, which are nearly free of smooth image
    structure: ``sigma = median(|d|) / 0.6745``. Works for arrays of any dimension; axes of
    length 1 (a one-slice volume) are ignored.

    Args:
        array: voxel values (a single channel).

    Returns:
        The estimated standard deviation in the array's units (0 for tiny arrays).

    Example:
        >>> import numpy as np
        >>> noise = np.random.default_rng(0).normal(0, 3.0, (64, 64))
        >>> round(estimate_noise_sigma(noise + np.linspace(0, 100, 64)), 1)
        3.0
    """
    data = np.asarray(array, dtype=np.float64)
    data = data.reshape([n for n in data.shape if n != 1])  # a one-slice volume is 2D
    even = tuple(slice(0, (n // 2) * 2) for n in data.shape)
    data = data[even]
    if data.size == 0:
        return 0.0
    detail = np.zeros(tuple(n // 2 for n in data.shape))
    for corner in itertools.product((0, 1), repeat=data.ndim):
        sign = -1.0 if sum(corner) % 2 else 1.0
        detail += sign * data[tuple(slice(c, None, 2) for c in corner)]
    detail /= np.sqrt(2.0**data.ndim)
    detail = detail[np.isfinite(detail)]
    return float(np.median(np.abs(detail)) / 0.6745) if detail.size else 0.0


#: A 3D image whose coarsest spacing is at least this many times its other spacings (thick
#: slices, e.g. 0.8 x 0.8 x 6.5 mm MRI) is filtered slice by slice by :func:`nl_means`.
ANISOTROPY_FOR_SLICES = 2.0


def _slice_axis(image: MedicalImage, slicewise: bool | None) -> int | None:
    """Array axis along which a 3D image is filtered slice by slice, or ``None`` for 3D."""
    if image.ndim != 3 or slicewise is False:
        return None
    spacing = np.asarray(image.spacing[::-1], dtype=float)  # array order (z, y, x)
    shape = np.asarray(image.array.shape[:3])
    if np.any(shape == 1):
        return int(np.argmin(shape))  # a one-slice volume is a 2D image
    coarse = int(np.argmax(spacing))
    others = np.delete(spacing, coarse)
    if slicewise or spacing[coarse] >= ANISOTROPY_FOR_SLICES * others.max():
        return coarse
    return None


def nl_means(
    image: MedicalImage,
    h: float | None = None,
    patch_size: int = 5,
    patch_distance: int | None = None,
    slicewise: bool | None = None,
) -> MedicalImage:
    """Non-local means (scikit-image ``denoise_nl_means``, fast mode), in the image's units.

    Each channel is scaled from its min..max to ``[0, 1]`` for filtering and back afterwards,
    so the result keeps the input's intensity scale (e.g. Hounsfield units).

    Volumes with thick slices are filtered slice by slice (2D patches and search windows in
    the plane of the finer axes): a 3D search reaching ``patch_distance`` slices away looks
    tens of millimetres off for similar patches, costs ``2 * patch_distance + 1`` times more,
    and denoises no better (on a 0.8 x 0.8 x 6.5 mm brain MRI: 1.5 s instead of 50 s, with
    a slightly higher PSNR against the noise-free image). Other volumes are filtered in 3D
    with a search radius of 3 voxels (7^3 = 343 candidate patches rather than 13^3 = 2197:
    7 times faster, and no less accurate on 1 mm MRI). The noise level is estimated on the
    whole image either way.

    Args:
        image: intensity image, 2D or 3D; colour images are filtered channel by channel.
        h: filter strength in the image's intensity units. ``None`` uses ``0.8 * sigma``
            with sigma estimated by :func:`estimate_noise_sigma`.
        patch_size: patch side in voxels.
        patch_distance: search radius in voxels; ``None`` uses 6 for 2D images and slices,
            3 for 3D filtering.
        slicewise: for 3D images, ``True`` filters slice by slice across the coarsest axis,
            ``False`` always in 3D; ``None`` (default) slice by slice when the coarsest
            spacing is at least :data:`ANISOTROPY_FOR_SLICES` times the others, or the image
            has a single slice.

    Returns:
        A float32 image on the same grid.

    Raises:
        PreprocessError: label image or invalid parameters.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> rng = np.random.default_rng(0)
        >>> clean = np.where(np.arange(32) < 16, 0.0, 1000.0) * np.ones((32, 1))
        >>> noisy = MedicalImage(clean + rng.normal(0, 50, (32, 32)), spacing=(1, 1))
        >>> out = nl_means(noisy).array
        >>> bool(np.abs(out - clean).std() < 0.5 * np.abs(noisy.array - clean).std())
        True
    """
    require_intensity(image, "nl_means")
    if h is not None and not h > 0:
        raise PreprocessError(None, f"nl_means h must be positive, got {h}")
    if int(patch_size) < 1 or (patch_distance is not None and int(patch_distance) < 1):
        raise PreprocessError(None, "nl_means patch_size and patch_distance must be >= 1")
    axis = _slice_axis(image, slicewise)
    if patch_distance is None:
        patch_distance = 3 if image.ndim == 3 and axis is None else 6

    def one(arr: np.ndarray) -> np.ndarray:
        data = arr.astype(np.float64)
        finite = np.isfinite(data)
        if not finite.any():
            return arr.astype(np.float32)
        lo, hi = float(data[finite].min()), float(data[finite].max())
        if hi <= lo:
            return arr.astype(np.float32)
        unit = np.where(finite, (data - lo) / (hi - lo), 0.0)
        sigma = estimate_noise_sigma(unit)
        strength = 0.8 * sigma if h is None else float(h) / (hi - lo)
        if strength <= 0:
            return arr.astype(np.float32)

        def filt(block: np.ndarray) -> np.ndarray:
            return np.asarray(
                denoise_nl_means(
                    block,
                    h=strength,
                    sigma=sigma,
                    patch_size=int(patch_size),
                    patch_distance=int(patch_distance),
                    fast_mode=True,
                    channel_axis=None,
                )
            )

        if axis is None:
            out = filt(unit)
        else:
            planes = np.moveaxis(unit, axis, 0)
            out = np.moveaxis(np.stack([filt(plane) for plane in planes]), 0, axis)
        return (out * (hi - lo) + lo).astype(np.float32)

    return map_channels(image, one)


def anisotropic_diffusion(
    image: MedicalImage,
    time_step: float | None = None,
    iterations: int = 5,
    conductance: float = 3.0,
) -> MedicalImage:
    """Edge-preserving smoothing by curvature anisotropic diffusion (SimpleITK).

    Args:
        image: intensity image; colour images are filtered channel by channel.
        time_step: diffusion time step; ``None`` picks the largest stable one,
            ``min(spacing) / 2 ** (dim + 1)``.
        iterations: number of diffusion iterations (>= 1).
        conductance: edge sensitivity; lower values preserve more edges.

    Returns:
        A float32 image on the same grid.

    Raises:
        PreprocessError: label image or invalid parameters.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> rng = np.random.default_rng(0)
        >>> step = np.where(np.arange(16) < 8, 0.0, 100.0) * np.ones((16, 1))
        >>> img = MedicalImage(step + rng.normal(0, 5, (16, 16)), spacing=(1, 1))
        >>> out = anisotropic_diffusion(img, iterations=10).array
        >>> bool(out[:, 2:6].std() < img.array[:, 2:6].std())
        True
    """
    require_intensity(image, "anisotropic_diffusion")
    if int(iterations) < 1:
        raise PreprocessError(None, f"anisotropic_diffusion iterations must be >= 1: {iterations}")
    if not conductance > 0:
        raise PreprocessError(None, f"anisotropic_diffusion conductance must be > 0: {conductance}")
    step = min(image.spacing) / 2.0 ** (image.ndim + 1) if time_step is None else time_step
    if not step > 0:
        raise PreprocessError(None, f"anisotropic_diffusion time_step must be > 0: {time_step}")

    def one(channel: MedicalImage) -> MedicalImage:
        out = sitk.CurvatureAnisotropicDiffusion(
            _float_sitk(channel),
            timeStep=float(step),
            conductanceParameter=float(conductance),
            conductanceScalingUpdateInterval=1,
            numberOfIterations=int(iterations),
        )
        return from_sitk_like(out, channel)

    return map_channel_images(image, one)


#: Filters available to :func:`denoise`, by the names a pipeline stores.
DENOISE_METHODS: Mapping[str, Callable[..., MedicalImage]] = {
    "gaussian": gaussian_smooth,
    "median": median_filter,
    "nlm": nl_means,
    "anisotropic": anisotropic_diffusion,
}


def check_denoise_params(method: str, params: Mapping[str, Any]) -> Callable[..., MedicalImage]:
    """Check ``method`` and its keyword ``params``; return the filter function.

    Args:
        method: one of :data:`DENOISE_METHODS`.
        params: keyword arguments for that filter.

    Returns:
        The filter function.

    Raises:
        PreprocessError: unknown method, unknown parameter or missing required parameter.

    Example:
        >>> check_denoise_params("median", {"radius": 2}).__name__
        'median_filter'
    """
    if method not in DENOISE_METHODS:
        valid = ", ".join(DENOISE_METHODS)
        raise PreprocessError(None, f"unknown denoise method {method!r}; valid methods: {valid}")
    fn = DENOISE_METHODS[method]
    try:
        inspect.signature(fn).bind(None, **params)
    except TypeError as exc:
        raise PreprocessError(None, f"denoise method {method!r}: {exc}") from None
    return fn


def denoise(
    image: MedicalImage,
    method: Literal["gaussian", "median", "nlm", "anisotropic"],
    **params: Any,
) -> MedicalImage:
    """Denoise with a filter chosen by name.

    Args:
        image: intensity image.
        method: ``"gaussian"`` (:func:`gaussian_smooth`; ``sigma_mm`` defaults to the
            finest voxel spacing), ``"median"``
            (:func:`median_filter`), ``"nlm"`` (:func:`nl_means`) or ``"anisotropic"``
            (:func:`anisotropic_diffusion`).
        **params: keyword arguments of the chosen filter.

    Returns:
        The filtered image.

    Raises:
        PreprocessError: unknown method or parameters, or the filter's own errors.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.ones((8, 8)), spacing=(1, 1))
        >>> denoise(img, "gaussian", sigma_mm=1.0).array.dtype.name
        'float32'
    """
    fn = check_denoise_params(method, params)
    return fn(image, **params)
