"""Splitting touching objects with a distance-transform watershed.

Example:
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:20, :40]
    >>> blobs = ((yy - 10) ** 2 + (xx - 10) ** 2 < 64) | ((yy - 10) ** 2 + (xx - 27) ** 2 < 64)
    >>> labels = split_touching(blobs, min_distance_mm=5.0)
    >>> int(labels.max())
    2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from medlabel.segment.blocks._spacing import numpy_spacing

__all__ = ["split_touching"]


def split_touching(
    mask: np.ndarray,
    min_distance_mm: float,
    spacing: Sequence[float] | None = None,
    markers: np.ndarray | None = None,
) -> np.ndarray:
    """Label map splitting ``mask`` along its necks.

    Args:
        mask: boolean mask.
        min_distance_mm: smallest distance between two object centres.
        spacing: ITK-order spacing (1 mm when ``None``).
        markers: optional integer seeds (one value per object) instead of distance peaks.
    """
    m = np.asarray(mask, bool)
    sp = numpy_spacing(spacing, m.ndim)
    dist = ndimage.distance_transform_edt(m, sampling=sp)
    if markers is None:
        footprint = max(1, round(min_distance_mm / min(sp)))
        peaks = peak_local_max(
            dist, min_distance=footprint, labels=m.astype(np.int32), exclude_border=False
        )
        markers = np.zeros(m.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return np.asarray(watershed(-dist, markers, mask=m), dtype=np.int32)
