"""Intensity normalisation: z-score, percentile scaling and clipping.

Statistics are computed per channel, over finite voxels only (NaN and inf are ignored), and
optionally over the voxels of a mask (e.g. the body or the brain).

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.array([[1.0, 2.0, 3.0]]), spacing=(1, 1))
    >>> zscore(img).array.astype(float).round(4).tolist()
    [[-1.2247, 0.0, 1.2247]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import as_mask_array, map_channels, require_intensity

__all__ = ["clip_intensity", "percentile_scale", "zscore"]


def _sample(arr: np.ndarray, mask: np.ndarray | None, op: str) -> np.ndarray:
    values = arr if mask is None else arr[mask]
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if values.size == 0:
        where = "inside the mask" if mask is not None else "in the image"
        raise PreprocessError(None, f"{op}: no finite voxels {where} to compute statistics from")
    return values


def zscore(image: MedicalImage, mask: MedicalImage | np.ndarray | None = None) -> MedicalImage:
    """Subtract the mean and divide by the standard deviation.

    Args:
        image: intensity image; multi-channel images are normalised channel by channel.
        mask: optional mask on the image grid; when given, mean and standard deviation are
            taken from the voxels where ``mask > 0`` (all voxels are still transformed).

    Returns:
        A float32 image on the same grid. A constant image (standard deviation 0) becomes
        ``image - mean``, i.e. zeros, never NaN.

    Raises:
        PreprocessError: label image, mask of the wrong shape, or an empty mask.
        GeometryMismatchError: ``mask`` is an image on a different grid.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.array([[0.0, 10.0, 20.0, 99.0]]), spacing=(1, 1))
        >>> zscore(img, mask=np.array([[1, 0, 1, 0]])).array.astype(float).round(2).tolist()
        [[-1.0, 0.0, 1.0, 8.9]]
    """
    require_intensity(image, "zscore")
    m = None if mask is None else as_mask_array(image, mask, "zscore")

    def one(arr: np.ndarray) -> np.ndarray:
        values = _sample(arr, m, "zscore")
        mean = float(values.mean(dtype=np.float64))
        std = float(values.std(dtype=np.float64))
        scale = std if std > 0 and np.isfinite(std) else 1.0
        out = arr.astype(np.float32)  # statistics in float64, the transform in place in float32
        out -= np.float32(mean)
        out *= np.float32(1.0 / scale)
        return out

    return map_channels(image, one)


def percentile_scale(
    image: MedicalImage,
    lower: float = 0.5,
    upper: float = 99.5,
    out_range: Sequence[float] = (0.0, 1.0),
    mask: MedicalImage | np.ndarray | None = None,
    clip: bool = True,
) -> MedicalImage:
    """Map the ``lower`` and ``upper`` percentiles linearly onto ``out_range``.

    Args:
        image: intensity image; multi-channel images are scaled channel by channel.
        lower: lower percentile in ``[0, 100)``.
        upper: upper percentile in ``(lower, 100]``.
        out_range: ``(low, high)`` values the percentiles map to.
        mask: optional mask on the image grid; percentiles are taken inside it.
        clip: clip the result to ``out_range``.

    Returns:
        A float32 image on the same grid. When both percentiles are equal (a constant image)
        every voxel gets ``out_range[0]``.

    Raises:
        PreprocessError: label image, invalid percentiles or range, bad or empty mask.
        GeometryMismatchError: ``mask`` is an image on a different grid.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.arange(101.0).reshape(1, 101), spacing=(1, 1))
        >>> out = percentile_scale(img, lower=10, upper=90, out_range=(-1, 1))
        >>> out.array[0, [0, 10, 50, 90, 100]].tolist()
        [-1.0, -1.0, 0.0, 1.0, 1.0]
    """
    require_intensity(image, "percentile_scale")
    if not 0.0 <= lower < upper <= 100.0:
        raise PreprocessError(
            None, f"percentile_scale needs 0 <= lower < upper <= 100, got {lower}, {upper}"
        )
    if len(out_range) != 2 or not out_range[0] < out_range[1]:
        raise PreprocessError(
            None, f"percentile_scale out_range must be (low, high) with low < high: {out_range}"
        )
    a, b = float(out_range[0]), float(out_range[1])
    m = None if mask is None else as_mask_array(image, mask, "percentile_scale")

    def one(arr: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(_sample(arr, m, "percentile_scale"), [lower, upper])
        if hi <= lo:
            return np.full(arr.shape, a, dtype=np.float32)
        out = (arr.astype(np.float64) - lo) / (hi - lo) * (b - a) + a
        if clip:
            out = np.clip(out, a, b)
        return out.astype(np.float32)

    return map_channels(image, one)


def clip_intensity(image: MedicalImage, low: float | None, high: float | None) -> MedicalImage:
    """Clip intensities to ``[low, high]`` keeping the dtype.

    Args:
        image: intensity image (any number of channels).
        low: lower bound, or ``None`` for none.
        high: upper bound, or ``None`` for none.

    Returns:
        The clipped image on the same grid, with the input's dtype.

    Raises:
        PreprocessError: label image, no bound at all, or ``low > high``.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ct = MedicalImage(np.array([[-3000, 0, 4000]], np.int16), spacing=(1, 1))
        >>> clip_intensity(ct, -1024, 3071).array.tolist()
        [[-1024, 0, 3071]]
    """
    require_intensity(image, "clip_intensity")
    if low is None and high is None:
        raise PreprocessError(None, "clip_intensity needs low, high or both")
    if low is not None and high is not None and low > high:
        raise PreprocessError(None, f"clip_intensity needs low <= high, got {low} > {high}")
    arr = image.array
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        lo_int, hi_int = float(info.min), float(info.max)
        # Integer voxels: round the bounds inwards and keep them inside the dtype's range.
        lo_cast = None if low is None else np.clip(np.ceil(low), lo_int, hi_int).astype(arr.dtype)
        hi_cast = (
            None if high is None else np.clip(np.floor(high), lo_int, hi_int).astype(arr.dtype)
        )
        return image.with_array(np.clip(arr, lo_cast, hi_cast))
    return image.with_array(np.clip(arr, low, high).astype(arr.dtype, copy=False))
