"""Stacking DICOM slices into a volume: order, spacing, gaps and gantry tilt.

Slices are ordered by their position along the slice normal (the cross product of the row and
column direction cosines), never by file name or InstanceNumber. The slice spacing comes from
those positions, not from SliceThickness. Missing slices, uneven spacing and sheared (tilted)
stacks are detected and, by default, refused with the numbers that show the problem.

Example:
    >>> import numpy as np
    >>> ipps = np.array([[0, 0, 5.0], [0, 0, 0.0], [0, 0, 2.5]])
    >>> plan = plan_stack(ipps, (1, 0, 0, 0, 1, 0), source="series")
    >>> plan.order.tolist(), plan.spacing_z, plan.origin.tolist()
    ([1, 2, 0], 2.5, [0.0, 0.0, 0.0])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from medlabel.errors import GantryTiltError, SeriesError, SliceSpacingError

__all__ = ["IrregularPolicy", "StackPlan", "TiltPolicy", "apply_plan", "plan_stack"]

log = logging.getLogger(__name__)

IrregularPolicy = Literal["error", "warn", "resample"]
TiltPolicy = Literal["error", "resample"]

#: Relative deviation of one slice step from the typical step that counts as uneven.
SPACING_RTOL = 0.01
#: Absolute slack (mm) for rounding of positions written with few decimals.
SPACING_ATOL = 0.01
#: In-plane offset between slices, as a fraction of the pixel size, that counts as tilt.
TILT_TOL = 0.1


@dataclass
class StackPlan:
    """How to turn a set of slices into a regular volume.

    Attributes:
        order: slice indices in ascending position along the normal.
        origin: LPS position of the first voxel of the volume.
        direction: 3x3 matrix whose columns are the row, column and normal directions.
        spacing_z: distance between output slices (mm).
        positions: sorted slice positions along the normal (mm).
        shifts: per sorted slice ``(dy, dx)`` in pixels to undo gantry tilt, or ``None``.
        interp: for resampling onto a uniform grid, per output slice ``(lower, upper, weight)``
            indices into ``order`` and the weight of ``upper``; ``None`` when not resampled.
        warnings: problems accepted under a lenient policy, in words.
    """

    order: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    spacing_z: float
    positions: np.ndarray
    shifts: np.ndarray | None = None
    interp: list[tuple[int, int, float]] | None = None
    warnings: list[str] = field(default_factory=list)


def _normal(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    row /= np.linalg.norm(row)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    return row, col, normal


def plan_stack(
    ipps: np.ndarray,
    iop: Sequence[float],
    *,
    pixel_spacing: Sequence[float] = (1.0, 1.0),
    source: str = "series",
    names: Sequence[str] | None = None,
    irregular: IrregularPolicy = "error",
    tilt: TiltPolicy = "error",
    default_spacing: float = 1.0,
) -> StackPlan:
    """Order slices and check that they form a regular, rectilinear stack.

    Args:
        ipps: ``(n, 3)`` ImagePositionPatient of each slice.
        iop: ImageOrientationPatient shared by the slices.
        pixel_spacing: DICOM PixelSpacing ``(row spacing, column spacing)`` in mm.
        source: the folder or file named in error messages.
        names: a name per slice (file names) for error messages.
        irregular: on missing slices or uneven spacing, raise (``error``), accept the mean
            spacing with a warning (``warn``) or interpolate onto a uniform grid
            (``resample``).
        tilt: on sheared stacks (gantry tilt), raise or shift each slice back onto a
            rectilinear grid (``resample``).
        default_spacing: spacing along the normal for a single slice.

    Raises:
        SeriesError: duplicate positions. SliceSpacingError: gaps or uneven spacing.
        GantryTiltError: tilt.
    """
    ipps = np.asarray(ipps, dtype=float).reshape(-1, 3)
    n = len(ipps)
    row, col, normal = _normal(iop)
    direction = np.column_stack([row, col, normal])
    dist = ipps @ normal
    order = np.argsort(dist, kind="stable")
    pos = dist[order]
    label = list(names) if names is not None else [f"slice {i}" for i in range(n)]
    plan = StackPlan(order, ipps[order[0]].copy(), direction, float(default_spacing), pos)
    if n == 1:
        return plan

    steps = np.diff(pos)
    dup = np.flatnonzero(steps < SPACING_ATOL)
    if dup.size:
        a, b = order[dup[0]], order[dup[0] + 1]
        raise SeriesError(
            source,
            f"{dup.size + 1 if dup.size == 1 else dup.size} slices share a position "
            f"({pos[dup[0]]:.3f} mm along the normal, e.g. {label[a]} and {label[b]}); the folder "
            "may hold several echoes, phases or acquisitions: pick one series",
        )

    # Gantry tilt: the slice origins drift within the image plane as we move along the normal.
    rel = ipps[order] - ipps[order[0]]
    inplane = np.column_stack([rel @ row, rel @ col])  # mm along row (x) and column (y)
    px = np.asarray(pixel_spacing, dtype=float)  # (row spacing = dy, column spacing = dx)
    dx, dy = float(px[1]), float(px[0])
    offset_px = np.abs(inplane) / np.array([dx, dy])
    if offset_px.max() > TILT_TOL:
        extent = pos - pos[0]
        slope = np.linalg.lstsq(extent[:, None], inplane, rcond=None)[0][0]
        angle = float(np.degrees(np.arctan(np.linalg.norm(slope))))
        if tilt == "error":
            raise GantryTiltError(
                source,
                f"slices are sheared: the slice origins drift up to {np.abs(inplane).max():.2f} mm "
                f"within the image plane (gantry tilt about {angle:.1f} degrees); read with "
                "tilt='resample' (CLI: --tilt resample) to shift the slices onto a regular grid",
            )
        # Output slice k keeps slice k's pixels shifted by its in-plane offset.
        # rounded so that whole-pixel shifts written with few decimals stay whole
        plan.shifts = np.round(np.column_stack([inplane[:, 1] / dy, inplane[:, 0] / dx]), 4)
        plan.warnings.append(f"gantry tilt of about {angle:.1f} degrees corrected by resampling")

    typical = float(np.median(steps))
    uneven = np.abs(steps - typical) > np.maximum(SPACING_RTOL * typical, SPACING_ATOL)
    if not uneven.any():
        plan.spacing_z = float((pos[-1] - pos[0]) / (n - 1))
        return plan

    i = int(np.flatnonzero(uneven)[0])
    ratio = steps[i] / typical
    lo, hi = label[order[i]], label[order[i + 1]]
    if (
        np.all(np.abs(steps[uneven] / typical - np.round(steps[uneven] / typical)) < 0.05)
        and ratio > 1
    ):
        missing = int(np.sum(np.round(steps[uneven] / typical) - 1))
        what = (
            f"{missing} missing slice(s): a gap of {steps[i]:.3f} mm between {lo} and {hi} "
            f"(at {pos[i]:.3f} and {pos[i + 1]:.3f} mm) where the series steps {typical:.3f} mm"
        )
    else:
        what = (
            f"uneven slice spacing: steps range from {steps.min():.3f} to {steps.max():.3f} mm "
            f"(typical {typical:.3f} mm; first odd step {steps[i]:.3f} mm between {lo} and {hi})"
        )
    if irregular == "error":
        raise SliceSpacingError(
            source, f"{what}; read with irregular='resample' or 'warn' (CLI: --irregular)"
        )
    if irregular == "warn":
        plan.spacing_z = float((pos[-1] - pos[0]) / (n - 1))
        plan.warnings.append(
            f"{what}; kept the slices with their mean spacing {plan.spacing_z:.3f} mm"
        )
        log.warning("%s: %s", source, plan.warnings[-1])
        return plan

    count = round((pos[-1] - pos[0]) / typical) + 1
    step = float((pos[-1] - pos[0]) / (count - 1))
    targets = pos[0] + step * np.arange(count)
    upper = np.clip(np.searchsorted(pos, targets, side="left"), 1, n - 1)
    lower = upper - 1
    weight = np.clip((targets - pos[lower]) / (pos[upper] - pos[lower]), 0.0, 1.0)
    plan.interp = [(int(a), int(b), float(w)) for a, b, w in zip(lower, upper, weight, strict=True)]
    plan.spacing_z = step
    plan.warnings.append(f"{what}; interpolated onto {count} slices {step:.3f} mm apart")
    log.warning("%s: %s", source, plan.warnings[-1])
    return plan


def apply_plan(plan: StackPlan, slices: Sequence[np.ndarray], fill: float = 0.0) -> np.ndarray:
    """Stack decoded slices (in input order) into a ``[z, y, x(, c)]`` volume per ``plan``.

    Tilt shifts and uniform-grid interpolation produce floating-point values; otherwise the
    slices' own dtype is kept.
    """
    ordered = [slices[i] for i in plan.order]
    if plan.shifts is not None:
        shifted = []
        for sl, (sy, sx) in zip(ordered, plan.shifts, strict=True):
            shift = (sy, sx) + (0,) * (sl.ndim - 2)
            shifted.append(ndimage.shift(sl.astype(np.float32), shift, order=1, cval=fill))
        ordered = shifted
    if plan.interp is None:
        return np.stack(ordered)
    out = []
    for a, b, w in plan.interp:
        lo, hi = ordered[a].astype(np.float32), ordered[b].astype(np.float32)
        out.append(lo * (1.0 - w) + hi * w)
    return np.stack(out)
