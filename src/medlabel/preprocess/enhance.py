"""Contrast enhancement: CLAHE and global histogram equalisation (2D and 3D).

Both rescale each channel from its own minimum..maximum to ``[0, 1]`` first, so they accept
any intensity scale (Hounsfield units, raw MR values, 16-bit X-ray), and both return float32
images in ``[0, 1]``. Colour images are processed channel by channel.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.array([[0, 0, 0, 10]], np.uint16), spacing=(1, 1))
    >>> equalize_histogram(img, nbins=4).array.tolist()
    [[0.75, 0.75, 0.75, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage import exposure

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import map_channels, require_intensity

__all__ = ["clahe", "equalize_histogram"]


def _unit_range(arr: np.ndarray) -> np.ndarray | None:
    """``arr`` scaled from its finite min..max to [0, 1] (NaN -> 0), or None if constant."""
    data = arr.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return None
    lo, hi = float(data[finite].min()), float(data[finite].max())
    if hi <= lo:
        return None
    out = (data - lo) / (hi - lo)
    out[~finite] = 0.0
    return np.clip(out, 0.0, 1.0)


def clahe(
    image: MedicalImage,
    clip_limit: float = 0.01,
    kernel_size: int | Sequence[int] | None = None,
) -> MedicalImage:
    """Contrast-limited adaptive histogram equalisation (scikit-image ``equalize_adapthist``).

    Args:
        image: intensity image, 2D or 3D; colour images are equalised channel by channel.
        clip_limit: contrast limit in ``(0, 1]``; higher gives more contrast.
        kernel_size: size in voxels of the contextual regions, one int for all axes or one
            per axis in ITK order ``(x, y[, z])``. ``None`` uses 1/8 of the image extent.

    Returns:
        A float32 image in ``[0, 1]`` on the same grid (a constant image becomes zeros).

    Raises:
        PreprocessError: label image, invalid clip limit or kernel size.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ramp = MedicalImage(np.tile(np.linspace(-100, 100, 32), (32, 1)), spacing=(1, 1))
        >>> out = clahe(ramp, clip_limit=0.02)
        >>> out.dtype.name, float(out.array.min()) >= 0.0, float(out.array.max()) <= 1.0
        ('float32', True, True)
    """
    require_intensity(image, "clahe")
    if not 0.0 < clip_limit <= 1.0:
        raise PreprocessError(None, f"clahe clip_limit must be in (0, 1], got {clip_limit}")
    kernel: int | list[int] | None
    if kernel_size is None or isinstance(kernel_size, (int, np.integer)):
        kernel = None if kernel_size is None else int(kernel_size)
        sizes = [] if kernel is None else [kernel]
    else:
        sizes = [int(k) for k in kernel_size]
        if len(sizes) != image.ndim:
            raise PreprocessError(
                None, f"clahe kernel_size needs {image.ndim} values (x, y[, z]), got {sizes}"
            )
        kernel = sizes[::-1]  # ITK order -> NumPy order
    if any(k < 1 for k in sizes):
        raise PreprocessError(None, f"clahe kernel_size must be >= 1, got {kernel_size}")

    def one(arr: np.ndarray) -> np.ndarray:
        unit = _unit_range(arr)
        if unit is None:
            return np.zeros(arr.shape, np.float32)
        out = exposure.equalize_adapthist(unit, kernel_size=kernel, clip_limit=clip_limit)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    return map_channels(image, one)


def equalize_histogram(image: MedicalImage, nbins: int = 256) -> MedicalImage:
    """Global histogram equalisation (scikit-image ``equalize_hist``).

    Args:
        image: intensity image, 2D or 3D; colour images are equalised channel by channel.
        nbins: number of histogram bins (>= 2).

    Returns:
        A float32 image in ``[0, 1]`` on the same grid (a constant image becomes zeros).

    Raises:
        PreprocessError: label image or ``nbins < 2``.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.array([[0.0, 10.0, 20.0, 1000.0]]), spacing=(1, 1))
        >>> out = equalize_histogram(img, nbins=64)
        >>> out.dtype.name, out.array.astype(float).round(3).tolist()
        ('float32', [[0.5, 0.535, 0.695, 1.0]])
    """
    require_intensity(image, "equalize_histogram")
    if int(nbins) < 2:
        raise PreprocessError(None, f"equalize_histogram nbins must be >= 2, got {nbins}")

    def one(arr: np.ndarray) -> np.ndarray:
        unit = _unit_range(arr)
        if unit is None:
            return np.zeros(arr.shape, np.float32)
        out = exposure.equalize_hist(unit, nbins=int(nbins))
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    return map_channels(image, one)
