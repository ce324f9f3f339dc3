"""Cropping and padding with the geometry kept right.

Every function here updates the origin so that each kept voxel stays at the same world
position; spacing and direction never change.

Bounding boxes are tuples of slices in **NumPy order** (``[z, y, x]`` for 3D, ``[y, x]`` for
2D), so ``image.array[bbox]`` is the cropped block; sizes passed to :func:`pad_or_crop` are in
**ITK order** ``(x, y[, z])`` like :attr:`MedicalImage.size`.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.zeros((6, 8)), spacing=(0.5, 2.0), origin=(10, 20))
    >>> img.array[2:4, 3:6] = 1.0
    >>> foreground_bbox(img)
    (slice(2, 4, None), slice(3, 6, None))
    >>> crop_to_foreground(img).origin
    (11.5, 24.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import as_mask_array, check_output_memory

__all__ = [
    "CT_FOREGROUND_HU",
    "crop_to_bbox",
    "crop_to_foreground",
    "foreground_bbox",
    "foreground_threshold",
    "pad_or_crop",
]

#: Hounsfield units above which a CT voxel is the body (or table), not air: air is about
#: -1000 HU, lung about -850..-500, fat about -100 and soft tissue 0..100.
CT_FOREGROUND_HU = -500.0


def foreground_threshold(image: MedicalImage, threshold: float | str | None) -> float | None:
    """Resolve a foreground definition to a number (``None`` meaning non-zero voxels).

    Args:
        image: the image whose foreground is wanted.
        threshold: a number (foreground is ``value > threshold``); ``None`` or ``"nonzero"``
            for non-zero voxels; ``"otsu"`` for Otsu's threshold of the image's values; or
            ``"auto"``: :data:`CT_FOREGROUND_HU` (-500 HU) for a CT in Hounsfield units,
            Otsu's threshold otherwise (an MRI's noisy background, an X-ray's collimation).

    Returns:
        The threshold, or ``None`` for non-zero.

    Raises:
        PreprocessError: an unknown name.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ct = MedicalImage(np.array([[-1024, -1024, 40, 700]], np.int16), modality="CT")
        >>> foreground_threshold(ct, "auto")
        -500.0
        >>> mr = MedicalImage(np.array([[3.0, 5.0, 4.0, 200.0, 220.0, 210.0]]), modality="MR")
        >>> 5 < foreground_threshold(mr, "auto") < 200
        True
    """
    if threshold is None or threshold == "nonzero":
        return None
    if isinstance(threshold, str):
        name = threshold.strip().lower()
        if name not in ("auto", "otsu"):
            raise PreprocessError(
                None,
                f"unknown foreground threshold {threshold!r}: use a number, 'auto', 'otsu' "
                "or 'nonzero'",
            )
        values = np.asarray(image.array)
        if values.dtype.kind == "f":
            values = values[np.isfinite(values)]
        if name == "auto" and image.modality == "CT" and values.size and values.min() < -500:
            return CT_FOREGROUND_HU
        if values.size == 0:
            raise PreprocessError(None, "no foreground: the image holds no finite value")
        from skimage.filters import threshold_otsu

        return float(threshold_otsu(values.astype(np.float32, copy=False).ravel()))
    return float(threshold)


def _foreground(values: np.ndarray, ndim: int, threshold: float | None) -> np.ndarray:
    fg = values != 0 if threshold is None else values > threshold
    if values.ndim > ndim:  # channels: foreground in any channel
        fg = np.any(fg, axis=tuple(range(ndim, values.ndim)))
    return fg


def foreground_bbox(
    image_or_mask: MedicalImage | np.ndarray, threshold: float | None = None
) -> tuple[slice, ...]:
    """Tightest box around the foreground, as slices in NumPy order.

    Args:
        image_or_mask: an image (its channels are combined: foreground in any channel) or a
            spatial array.
        threshold: foreground is ``value > threshold``; ``None`` means ``value != 0``.

    Returns:
        One ``slice(start, stop)`` per spatial axis, in array order.

    Raises:
        PreprocessError: no foreground voxel.

    Example:
        >>> import numpy as np
        >>> ct = np.full((4, 5), -1000)
        >>> ct[1, 2:4] = 40
        >>> foreground_bbox(ct, threshold=-500)
        (slice(1, 2, None), slice(2, 4, None))
    """
    if isinstance(image_or_mask, MedicalImage):
        fg = _foreground(image_or_mask.array, image_or_mask.ndim, threshold)
    else:
        arr = np.asarray(image_or_mask)
        fg = _foreground(arr, arr.ndim, threshold)
    if not fg.any():
        what = "non-zero" if threshold is None else f"above {threshold}"
        raise PreprocessError(None, f"no foreground: no voxel is {what}")
    bbox = []
    for axis in range(fg.ndim):
        other = tuple(a for a in range(fg.ndim) if a != axis)
        hits = np.flatnonzero(np.any(fg, axis=other) if other else fg)
        bbox.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(bbox)


def crop_to_bbox(image: MedicalImage, bbox: Sequence[slice]) -> MedicalImage:
    """Crop to a box of slices in NumPy order (clipped to the image like ordinary slicing).

    Args:
        image: any image (labels and channels allowed).
        bbox: one slice per spatial axis in array order (``[z, y, x]`` / ``[y, x]``), step 1.

    Returns:
        A copy of the block, with the origin moved to the world position of its first voxel.

    Raises:
        PreprocessError: wrong number of slices, a step other than 1, or an empty box.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.arange(12).reshape(3, 4), spacing=(2, 3))
        >>> out = crop_to_bbox(img, (slice(1, 3), slice(2, None)))
        >>> out.array.tolist(), out.origin
        ([[6, 7], [10, 11]], (4.0, 3.0))
    """
    boxes = tuple(bbox)
    if len(boxes) != image.ndim or not all(isinstance(b, slice) for b in boxes):
        raise PreprocessError(None, f"bbox needs {image.ndim} slices (array order), got {bbox}")
    shape = image.array.shape[: image.ndim]
    starts = []
    for box, n in zip(boxes, shape, strict=True):
        start, stop, step = box.indices(n)
        if step != 1:
            raise PreprocessError(None, f"bbox slices must have step 1, got {box}")
        if stop <= start:
            raise PreprocessError(None, f"bbox {bbox} is empty for an image of shape {shape}")
        starts.append(start)
    block = np.array(image.array[boxes], copy=True)
    origin = image.index_to_world(starts[::-1])  # array order -> ITK order
    return image.with_array(block, origin=tuple(float(o) for o in origin))


def crop_to_foreground(
    image: MedicalImage,
    mask: MedicalImage | np.ndarray | None = None,
    threshold: float | str | None = None,
    margin_mm: float = 0.0,
) -> MedicalImage:
    """Crop to the bounding box of the foreground plus a margin.

    Args:
        image: image to crop (labels and channels allowed).
        mask: optional mask on the image grid; the box is taken around ``mask > 0``.
            Without it the box is taken around the image's own foreground.
        threshold: without a mask, foreground is ``value > threshold``; ``None`` (or
            ``"nonzero"``) means non-zero voxels, ``"otsu"`` Otsu's threshold and ``"auto"``
            -500 HU for CT, Otsu otherwise (see :func:`foreground_threshold`). A CT's air
            (-1024) and an MRI's background noise are not zero, so use ``"auto"`` for them.
        margin_mm: margin added on every side in mm (rounded up to whole voxels per axis and
            clipped to the image).

    Returns:
        The cropped image; voxels keep their world positions.

    Raises:
        PreprocessError: empty foreground, negative margin or mask of the wrong shape.
        GeometryMismatchError: ``mask`` is an image on a different grid.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.zeros((10, 10)), spacing=(1, 2))
        >>> img.array[5, 5] = 1
        >>> crop_to_foreground(img, margin_mm=2).size
        (5, 3)
        >>> ct = MedicalImage(np.full((6, 6), -1024, np.int16), modality="CT")
        >>> ct.array[2:4, 1:5] = 40
        >>> crop_to_foreground(ct, threshold="auto").size
        (4, 2)
    """
    if not margin_mm >= 0:
        raise PreprocessError(None, f"crop margin_mm must be >= 0, got {margin_mm}")
    if mask is not None:
        bbox = foreground_bbox(as_mask_array(image, mask, "crop_to_foreground"))
    else:
        bbox = foreground_bbox(image, foreground_threshold(image, threshold))
    margins = [math.ceil(margin_mm / s - 1e-9) for s in image.spacing[::-1]]  # array order
    shape = image.array.shape[: image.ndim]
    grown = tuple(
        slice(max(0, b.start - m), min(n, b.stop + m))
        for b, m, n in zip(bbox, margins, shape, strict=True)
    )
    return crop_to_bbox(image, grown)


def pad_or_crop(
    image: MedicalImage, size: Sequence[int], value: float | None = None
) -> MedicalImage:
    """Pad or crop symmetrically about the centre to an exact size.

    Where an axis grows by an odd number of voxels the extra one goes at the end; where it
    shrinks by an odd number, the extra one is removed from the end.

    Args:
        image: any image (labels and channels allowed).
        size: target size in ITK order ``(x, y[, z])``.
        value: fill value for padding; ``None`` uses the image minimum (0 when the image
            has no finite values).

    Returns:
        The image with ``size`` voxels; voxels keep their world positions.

    Raises:
        PreprocessError: wrong number of sizes, a size below 1, or an output too large for
            the available memory.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.ones((2, 3), np.uint8), spacing=(1, 1))
        >>> out = pad_or_crop(img, (5, 1), value=0)
        >>> out.array.tolist(), out.origin
        ([[0, 1, 1, 1, 0]], (-1.0, 0.0))
    """
    target = [int(s) for s in size]
    if len(target) != image.ndim or any(s < 1 for s in target):
        raise PreprocessError(
            None, f"pad_or_crop needs {image.ndim} sizes >= 1 (x, y[, z]), got {list(size)}"
        )
    arr = image.array
    check_output_memory("pad_or_crop", target, arr.dtype.itemsize * max(1, image.channels))
    if value is None:
        finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
        value = float(finite.min()) if finite.size else 0.0
    shape = arr.shape[: image.ndim]
    wanted = target[::-1]  # ITK order -> array order
    crop, pad, offset = [], [], []
    for n, m in zip(shape, wanted, strict=True):
        if m <= n:
            start = (n - m) // 2
            crop.append(slice(start, start + m))
            pad.append((0, 0))
            offset.append(start)
        else:
            before = (m - n) // 2
            crop.append(slice(0, n))
            pad.append((before, m - n - before))
            offset.append(-before)
    block = arr[tuple(crop)]
    pad_width = pad + [(0, 0)] * (arr.ndim - image.ndim)
    fill: float | np.ndarray = float(value)
    if arr.dtype.kind in "iu":
        info = np.iinfo(arr.dtype)
        fill = np.asarray(np.clip(np.rint(fill), info.min, info.max)).astype(arr.dtype)
    out = np.pad(block, pad_width, mode="constant", constant_values=fill)
    origin = image.index_to_world(offset[::-1])
    return image.with_array(out, origin=tuple(float(o) for o in origin))
