"""Resampling onto a new voxel spacing or onto another image's grid (SimpleITK).

Label images use nearest-neighbour interpolation and keep their integer dtype. Intensity
images use linear interpolation by default and also keep their dtype: integer voxels are
interpolated in floating point, then rounded and clipped to the dtype's range.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> ct = MedicalImage(np.zeros((10, 64, 64), np.int16), spacing=(0.7, 0.7, 5.0))
    >>> iso = resample_to_spacing(ct, (1.4, 1.4, 2.5))
    >>> iso.size, iso.spacing, iso.dtype.name
    ((32, 32, 20), (1.4, 1.4, 2.5), 'int16')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import SimpleITK as sitk

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import check_output_memory, from_sitk_like, map_channel_images

__all__ = ["Interpolation", "resample_to_reference", "resample_to_spacing"]

Interpolation = Literal["linear", "bspline", "nearest"]

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "bspline": sitk.sitkBSpline,
    "nearest": sitk.sitkNearestNeighbor,
}


def choose_interpolator(image: MedicalImage, interpolation: str | None) -> str:
    """Resolve ``None`` to nearest (labels) or linear (intensities) and validate the name."""
    if interpolation is None:
        return "nearest" if image.is_label else "linear"
    if interpolation not in _INTERPOLATORS:
        valid = ", ".join(_INTERPOLATORS)
        raise PreprocessError(
            None, f"unknown interpolation {interpolation!r}; valid interpolations: {valid}"
        )
    if image.is_label and interpolation != "nearest":
        raise PreprocessError(
            None, f"{interpolation} interpolation would mix classes; label images use 'nearest'"
        )
    return interpolation


def _work_dtype(dtype: np.dtype, interpolation: str) -> np.dtype:
    """Dtype SimpleITK resamples in: the input's for nearest, else a float wide enough."""
    if interpolation == "nearest" and dtype != np.float16:
        return dtype
    if dtype == np.float64 or (dtype.kind in "iu" and dtype.itemsize >= 4):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def restore_dtype(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast interpolated values back to ``dtype`` (round and clip for integers)."""
    if arr.dtype == dtype:
        return arr
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(arr), info.min, info.max).astype(dtype)
    return arr.astype(dtype)


def resample_bytes_per_voxel(image: MedicalImage, interpolation: str, dtype: np.dtype) -> float:
    """Peak bytes per output voxel of :func:`resample_grid`: SimpleITK's output and its NumPy
    copy in the working dtype, the cast to the output dtype, and the stacked channels.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ct = MedicalImage(np.zeros((2, 2, 2), np.int16))
        >>> resample_bytes_per_voxel(ct, "linear", np.dtype(np.int16))  # 2 x float32 + int16
        10.0
    """
    work = _work_dtype(image.dtype, interpolation)
    channels = max(1, image.channels)
    stacked = 2 if image.channels else 1  # channels are stacked into a new array at the end
    return float(channels * (2 * work.itemsize + stacked * np.dtype(dtype).itemsize))


def resample_grid(
    image: MedicalImage,
    size: Sequence[int],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: Sequence[float],
    interpolation: str,
    default_value: float = 0.0,
    extrapolate: bool = False,
    dtype: np.dtype | None = None,
    what: str = "resampling",
) -> MedicalImage:
    """Resample ``image`` (any channels) onto an explicit grid; shared by resample and resize.

    Args:
        image: the image to resample.
        size: output size in ITK order.
        spacing: output spacing in ITK order.
        origin: output origin (LPS, mm).
        direction: output direction (row-major).
        interpolation: ``"linear"``, ``"bspline"`` or ``"nearest"`` (already validated).
        default_value: value of output voxels outside the input.
        extrapolate: fill outside voxels from the nearest input voxel instead.
        dtype: output dtype (integers are rounded and clipped); ``None`` keeps the input's.
        what: the operation, as the memory check's message names it.

    Returns:
        The resampled image with the input's modality, metadata and label flag.

    Raises:
        PreprocessError: the output would not fit in the available memory (checked first).
    """
    out_dtype = image.dtype if dtype is None else np.dtype(dtype)
    work = _work_dtype(image.dtype, interpolation)
    check_output_memory(
        what,
        size,
        resample_bytes_per_voxel(image, interpolation, out_dtype),
    )

    def one(channel: MedicalImage) -> MedicalImage:
        src = channel.with_array(channel.array.astype(work, copy=False)).to_sitk()
        f = sitk.ResampleImageFilter()
        f.SetSize([int(s) for s in size])
        f.SetOutputSpacing([float(s) for s in spacing])
        f.SetOutputOrigin([float(o) for o in origin])
        f.SetOutputDirection([float(d) for d in direction])
        f.SetInterpolator(_INTERPOLATORS[interpolation])
        f.SetDefaultPixelValue(float(default_value))
        f.SetUseNearestNeighborExtrapolator(bool(extrapolate))
        out = from_sitk_like(f.Execute(src), channel)
        return out.with_array(restore_dtype(out.array, out_dtype))

    return map_channel_images(image, one)


def resample_to_spacing(
    image: MedicalImage,
    spacing: Sequence[float],
    interpolation: Interpolation | None = None,
) -> MedicalImage:
    """Resample to a new voxel spacing, keeping origin, direction and physical extent.

    The new size is ``round(old_size * old_spacing / new_spacing)`` (at least 1) per axis.
    Voxels past the old field of view (from rounding) copy their nearest neighbour.

    Args:
        image: image to resample (2D or 3D, any number of channels).
        spacing: new spacing in mm, ITK order ``(x, y[, z])``.
        interpolation: ``"linear"``, ``"bspline"`` or ``"nearest"``; ``None`` picks nearest
            for label images and linear otherwise.

    Returns:
        The resampled image with the input's dtype.

    Raises:
        PreprocessError: wrong number of spacing values, non-positive spacing, unknown
            interpolation, a non-nearest interpolation for a label image, or an output too
            large for the available memory (refused before resampling, with its size and the
            memory it would need).

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> seg = MedicalImage(np.eye(4, dtype=np.uint8), spacing=(1, 1), is_label=True)
        >>> resample_to_spacing(seg, (2, 2)).array.tolist()
        [[1, 0], [0, 1]]
    """
    new_spacing = tuple(float(s) for s in spacing)
    if len(new_spacing) != image.ndim:
        raise PreprocessError(
            None, f"resample needs {image.ndim} spacing values (x, y[, z]), got {new_spacing}"
        )
    if not all(np.isfinite(s) and s > 0 for s in new_spacing):
        raise PreprocessError(None, f"resample spacing must be positive, got {new_spacing}")
    interp = choose_interpolator(image, interpolation)
    size = [
        max(1, round(n * old / new))
        for n, old, new in zip(image.size, image.spacing, new_spacing, strict=True)
    ]
    return resample_grid(
        image,
        size,
        new_spacing,
        image.origin,
        image.direction,
        interp,
        extrapolate=True,
        what=f"resampling to spacing ({', '.join(f'{s:g}' for s in new_spacing)}) mm",
    )


def resample_to_reference(
    image: MedicalImage,
    reference: MedicalImage,
    interpolation: Interpolation | None = None,
    default_value: float = 0,
) -> MedicalImage:
    """Resample onto the grid (size, spacing, origin, direction) of ``reference``.

    Typical use: bring a mask or a second sequence onto an image's grid, or a prediction made
    on a resampled grid back onto the native one.

    Args:
        image: image to resample (any number of channels).
        reference: image whose grid the output takes (its voxels are not used).
        interpolation: as for :func:`resample_to_spacing`.
        default_value: value for output voxels outside ``image``'s field of view.

    Returns:
        ``image`` on ``reference``'s grid, with ``image``'s dtype, modality, metadata and
        label flag.

    Raises:
        PreprocessError: 2D/3D mismatch or invalid interpolation.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.arange(16.0).reshape(4, 4), spacing=(1, 1))
        >>> ref = MedicalImage(np.zeros((2, 2)), spacing=(1, 1), origin=(1, 2))
        >>> resample_to_reference(img, ref).array.tolist()
        [[9.0, 10.0], [13.0, 14.0]]
    """
    if image.ndim != reference.ndim:
        raise PreprocessError(
            None, f"cannot resample a {image.ndim}D image onto a {reference.ndim}D reference"
        )
    interp = choose_interpolator(image, interpolation)
    return resample_grid(
        image,
        reference.size,
        reference.spacing,
        reference.origin,
        reference.direction,
        interp,
        default_value=default_value,
    )
