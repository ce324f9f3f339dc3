"""Connected components: labelling, keeping the largest, dropping small or border ones.

Example:
    >>> import numpy as np
    >>> m = np.zeros((1, 8), bool); m[0, :3] = True; m[0, 5:6] = True
    >>> labels, n = connected_components(m)
    >>> n, int(keep_largest(m).sum()), int(remove_small(m, 2.0).sum())
    (2, 3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medlabel.segment.blocks._spacing import voxel_volume

__all__ = ["connected_components", "keep_largest", "remove_border_touching", "remove_small"]


def connected_components(
    mask: np.ndarray, full_connectivity: bool = False
) -> tuple[np.ndarray, int]:
    """Label connected regions: faces only (6/4-connected) or also edges and corners."""
    m = np.asarray(mask, bool)
    structure = ndimage.generate_binary_structure(m.ndim, m.ndim if full_connectivity else 1)
    labels, n = ndimage.label(m, structure=structure)
    return labels, int(n)


def _sizes(labels: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=n + 1)[1:]


def keep_largest(mask: np.ndarray, n: int = 1, full_connectivity: bool = False) -> np.ndarray:
    """The ``n`` largest connected components of ``mask``."""
    labels, count = connected_components(mask, full_connectivity)
    if count <= n:
        return labels > 0
    keep = np.argsort(_sizes(labels, count))[::-1][:n] + 1
    return np.isin(labels, keep)


def remove_small(
    mask: np.ndarray,
    min_size: float,
    spacing: Sequence[float] | None = None,
    full_connectivity: bool = False,
) -> np.ndarray:
    """Drop components smaller than ``min_size`` (mm^3 in 3D, mm^2 in 2D; voxels if no spacing)."""
    labels, count = connected_components(mask, full_connectivity)
    if count == 0:
        return labels > 0
    sizes = _sizes(labels, count) * voxel_volume(spacing, labels.ndim)
    keep = np.flatnonzero(sizes >= min_size) + 1
    return np.isin(labels, keep)


def remove_border_touching(mask: np.ndarray, axes: Sequence[int] | None = None) -> np.ndarray:
    """Drop components that touch the array's faces along ``axes`` (all axes by default).

    With ``axes=(1, 2)`` on a ``[z, y, x]`` CT, air outside the patient (which reaches the
    in-plane border) goes while the lungs, which may reach the top and bottom slices, stay.
    """
    labels, count = connected_components(mask)
    if count == 0:
        return labels > 0
    border: set[int] = set()
    for axis in range(labels.ndim) if axes is None else axes:
        for end in (0, -1):
            border |= set(np.unique(np.take(labels, end, axis=axis)).tolist())
    border.discard(0)
    return (labels > 0) & ~np.isin(labels, sorted(border))
