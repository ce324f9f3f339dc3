"""Spacing helpers shared by the blocks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def numpy_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """ITK-order spacing ``(x, y[, z])`` as NumPy-order ``(z, y, x)`` (1 mm when ``None``)."""
    if spacing is None:
        return (1.0,) * ndim
    if len(spacing) != ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not fit a {ndim}D array")
    return tuple(float(s) for s in spacing)[::-1]


def voxel_volume(spacing: Sequence[float] | None, ndim: int) -> float:
    """Volume (mm^3, or mm^2 in 2D) of one voxel."""
    return float(np.prod(numpy_spacing(spacing, ndim)))
