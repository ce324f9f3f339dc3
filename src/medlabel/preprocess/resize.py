"""Resizing to a fixed number of voxels while keeping the physical field of view.

The outer edges of the field of view stay where they are: spacing becomes
``old_spacing * old_size / new_size`` and the origin (the first voxel's *centre*) moves by
half the change in spacing. This is how a 2D network input of e.g. 256 x 256 is made from an
X-ray of any size without losing the ability to map the prediction back.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> xray = MedicalImage(np.zeros((400, 300), np.uint16), spacing=(0.2, 0.2))
    >>> small = resize(xray, (150, 200))
    >>> small.size, small.spacing, small.origin, small.dtype.name
    ((150, 200), (0.4, 0.4), (0.1, 0.1), 'uint16')
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import map_channels
from medlabel.preprocess.resample import Interpolation, choose_interpolator, resample_grid

__all__ = ["resize"]


def resize(
    image: MedicalImage,
    size: Sequence[int],
    interpolation: Interpolation | None = None,
    anti_alias: bool = True,
) -> MedicalImage:
    """Resample to ``size`` voxels over the same physical field of view.

    Args:
        image: 2D or 3D image; colour images are resized channel by channel.
        size: new size in ITK order ``(x, y[, z])``. A one-slice volume (a single CT or MR
            DICOM slice) also takes two sizes: it is resized in-plane and keeps its slice.
        interpolation: ``"linear"``, ``"bspline"`` or ``"nearest"``; ``None`` picks nearest for
            label images and linear otherwise.
        anti_alias: when shrinking an axis by a factor ``f``, first smooth it with a Gaussian
            of ``(f - 1) / 2`` input voxels (as scikit-image does). Never applied to labels or
            with nearest interpolation.

    Returns:
        The resized image with the input's dtype (integers rounded and clipped), direction,
        modality, metadata and label flag. The corners of the field of view do not move.

    Raises:
        PreprocessError: wrong number of sizes, a size below 1, invalid interpolation, or an
            output too large for the available memory.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> seg = MedicalImage(np.kron(np.eye(2, dtype=np.uint8), np.ones((2, 2), np.uint8)),
        ...                    spacing=(1, 1), is_label=True)
        >>> resize(seg, (2, 2)).array.tolist()
        [[1, 0], [0, 1]]
        >>> one_slice = MedicalImage(np.zeros((1, 512, 512), np.int16), spacing=(0.5, 0.5, 5))
        >>> out = resize(one_slice, (256, 256))
        >>> out.size, out.spacing
        ((256, 256, 1), (1.0, 1.0, 5.0))
    """
    new_size = [int(s) for s in size]
    one_slice = image.ndim == 3 and image.size[2] == 1
    if one_slice and len(new_size) == 2:
        new_size.append(1)  # a single slice is resized in-plane and stays one slice
    if any(s < 1 for s in new_size) or len(new_size) != image.ndim:
        if image.ndim == 2:
            wanted = "2 sizes >= 1 (x, y)"
        elif one_slice:
            wanted = "2 sizes >= 1 (x, y) for a one-slice volume, or 3 (x, y, z)"
        else:
            wanted = f"3 sizes >= 1 (x, y, z) for a volume of {image.size[2]} slices"
        reason = f"resize needs {wanted}, got {list(size)}"
        if image.ndim == 3 and not one_slice and len(new_size) == 2:
            reason += " (2 sizes resize only a 2D image or a one-slice volume)"
        raise PreprocessError(None, reason)
    interp = choose_interpolator(image, interpolation)
    old_size = np.asarray(image.size, dtype=float)
    old_spacing = np.asarray(image.spacing)
    factor = old_size / np.asarray(new_size, dtype=float)  # > 1 when shrinking
    new_spacing = old_spacing * factor
    origin = np.asarray(image.origin) + image.direction_matrix @ ((new_spacing - old_spacing) / 2)

    source = image
    if anti_alias and interp != "nearest" and not image.is_label and np.any(factor > 1):
        sigma = np.maximum(0.0, (factor - 1.0) / 2.0)[::-1]  # ITK order -> array order

        def smooth(arr: np.ndarray) -> np.ndarray:
            work = np.float64 if arr.dtype == np.float64 else np.float32
            return ndimage.gaussian_filter(arr.astype(work), sigma=sigma, mode="nearest")

        source = map_channels(image, smooth)

    return resample_grid(
        source,
        new_size,
        tuple(float(s) for s in new_spacing),
        tuple(float(o) for o in origin),
        image.direction,
        interp,
        extrapolate=True,
        dtype=image.dtype,
        what="resizing",
    )
