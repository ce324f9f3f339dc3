"""Morphology with radii in millimetres, exact on anisotropic grids.

Dilation and erosion use the Euclidean distance transform with the voxel spacing, so a
radius of 5 mm means 5 mm along every axis whatever the slice thickness, and large radii
cost no more than small ones.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((1, 7, 7), bool); mask[0, 3, 3] = True
    >>> int(dilate(mask, 1.0, (1.0, 1.0, 3.0)).sum())  # 3 mm slices: stays in its slice
    5
    >>> ring = np.zeros((5, 5), bool); ring[1:4, 1:4] = True; ring[2, 2] = False
    >>> int(fill_holes(ring).sum())
    9
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medlabel.segment.blocks._spacing import numpy_spacing

__all__ = ["close", "dilate", "erode", "fill_holes", "fill_small_holes", "open_"]


def dilate(
    mask: np.ndarray, radius_mm: float, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Grow ``mask`` by ``radius_mm`` (every voxel within that distance of the mask)."""
    m = np.asarray(mask, bool)
    if radius_mm <= 0 or not m.any():
        return m.copy()
    dist = ndimage.distance_transform_edt(~m, sampling=numpy_spacing(spacing, m.ndim))
    return np.asarray(dist <= radius_mm)


def erode(mask: np.ndarray, radius_mm: float, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Shrink ``mask`` by ``radius_mm`` (voxels farther than that from the background).

    The mask is extended beyond the array's faces by repeating its edge, so a structure cut
    by the crop is not eaten away from the crop's faces.
    """
    m = np.asarray(mask, bool)
    if radius_mm <= 0 or not m.any() or m.all():
        return m.copy()
    sp = numpy_spacing(spacing, m.ndim)
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in sp]
    padded = np.pad(m, [(p, p) for p in pad], mode="edge")
    dist = ndimage.distance_transform_edt(padded, sampling=sp)
    inner = tuple(slice(p, p + n) for p, n in zip(pad, m.shape, strict=True))
    return np.asarray(dist[inner] > radius_mm)


def open_(mask: np.ndarray, radius_mm: float, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Opening: removes parts thinner than ``2 * radius_mm`` (erode then dilate)."""
    return dilate(erode(mask, radius_mm, spacing), radius_mm, spacing) & np.asarray(mask, bool)


def close(mask: np.ndarray, radius_mm: float, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Closing: bridges gaps narrower than ``2 * radius_mm`` (dilate then erode).

    The mask is padded first so that structures near the border close as in open space.
    """
    m = np.asarray(mask, bool)
    if radius_mm <= 0 or not m.any():
        return m.copy()
    sp = numpy_spacing(spacing, m.ndim)
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in sp]
    padded = np.pad(m, [(p, p) for p in pad])
    dist = ndimage.distance_transform_edt(~padded, sampling=sp)
    grown = dist <= radius_mm
    closed = ndimage.distance_transform_edt(grown, sampling=sp) > radius_mm
    inner = tuple(slice(p, p + n) for p, n in zip(pad, m.shape, strict=True))
    return np.asarray(closed[inner] | m)


def fill_holes(mask: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Fill enclosed holes, in the whole array or slice by slice along ``axis``.

    Filling slice by slice (``axis=0`` for axial slices of a ``[z, y, x]`` volume) closes
    cavities that open to the outside only at the top or bottom of the volume, such as the
    lungs within a body outline.
    """
    m = np.asarray(mask, bool)
    if axis is None:
        return np.asarray(ndimage.binary_fill_holes(m))
    out = np.empty_like(m)
    for i in range(m.shape[axis]):
        index = [slice(None)] * m.ndim
        index[axis] = i  # type: ignore[call-overload]
        out[tuple(index)] = ndimage.binary_fill_holes(m[tuple(index)])
    return out


def fill_small_holes(
    mask: np.ndarray,
    max_area_mm2: float,
    spacing: Sequence[float] | None = None,
    axis: int = 0,
) -> np.ndarray:
    """Fill enclosed holes slice by slice along ``axis``, but only cavities that stay small.

    A hole is filled only when its cross-section is at most ``max_area_mm2`` in every slice it
    reaches: holes are joined across slices first, so a cavity that is large somewhere (the
    inside of the skull) stays open even in the slices where it is small (near the vertex).
    A 2D mask is one slice (``axis`` is ignored).

    Example:
        >>> ring = np.zeros((9, 9), bool); ring[1:8, 1:8] = True; ring[2:7, 2:7] = False
        >>> int(fill_small_holes(ring, 30.0, (1.0, 1.0)).sum()), int(ring.sum())
        (49, 24)
        >>> int(fill_small_holes(ring, 20.0, (1.0, 1.0)).sum())  # 25 mm^2 hole: kept open
        24
    """
    m = np.asarray(mask, bool)
    sp = numpy_spacing(spacing, m.ndim)
    if m.ndim == 2:
        m, sp, axis = m[None], (1.0, *sp), 0
    moved = np.moveaxis(m, axis, 0)
    pixel = float(np.prod([s for i, s in enumerate(sp) if i != axis]))
    holes = np.stack([ndimage.binary_fill_holes(s) & ~s for s in moved])
    labels, n = ndimage.label(holes)  # 6-connected in 3D: joined across slices face to face
    if n == 0:
        return np.asarray(mask, bool).copy()
    per_slice = np.bincount(
        (labels * moved.shape[0] + np.arange(moved.shape[0])[:, None, None])[holes],
        minlength=(n + 1) * moved.shape[0],
    ).reshape(n + 1, moved.shape[0])
    small = per_slice.max(axis=1) * pixel <= max_area_mm2
    small[0] = False
    filled = np.moveaxis(moved | small[labels], 0, axis)
    return np.asarray(filled.reshape(np.shape(mask)))
