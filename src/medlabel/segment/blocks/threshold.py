"""Intensity thresholds: fixed ranges, named Hounsfield ranges and Otsu.

Example:
    >>> import numpy as np
    >>> ct = np.array([[-1000, -100, 40, 700]])
    >>> hu_range(ct, "fat").tolist()
    [[False, True, False, False]]
    >>> threshold(ct, lower=300).tolist()
    [[False, False, False, True]]
"""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_otsu

__all__ = ["HU_RANGES", "hu_range", "otsu", "threshold"]

#: Hounsfield ranges (inclusive) of the tissue classes used by the CT recipes.
HU_RANGES: dict[str, tuple[float, float]] = {
    "air": (-np.inf, -900.0),
    "lung": (-950.0, -320.0),
    "fat": (-190.0, -30.0),
    "soft-tissue": (-29.0, 150.0),
    "bone": (200.0, np.inf),
    "body": (-500.0, np.inf),
}


def threshold(values: np.ndarray, lower: float = -np.inf, upper: float = np.inf) -> np.ndarray:
    """Boolean mask of ``lower <= values <= upper``."""
    if lower > upper:
        raise ValueError(f"lower threshold {lower} is above upper threshold {upper}")
    arr = np.asarray(values)
    return (arr >= lower) & (arr <= upper)


def hu_range(values: np.ndarray, name: str) -> np.ndarray:
    """Mask of a named tissue class by Hounsfield units (see :data:`HU_RANGES`)."""
    if name not in HU_RANGES:
        raise ValueError(f"unknown HU range {name!r}; choose from {sorted(HU_RANGES)}")
    return threshold(values, *HU_RANGES[name])


def otsu(values: np.ndarray, mask: np.ndarray | None = None, nbins: int = 256) -> float:
    """Otsu's threshold of ``values`` (inside ``mask`` when given).

    Raises:
        ValueError: when the region is empty or holds a single value.
    """
    sample = np.asarray(values, dtype=np.float64)
    if mask is not None:
        sample = sample[np.asarray(mask, bool)]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0 or sample.min() == sample.max():
        raise ValueError("Otsu's threshold needs at least two distinct values")
    return float(threshold_otsu(sample, nbins=nbins))
