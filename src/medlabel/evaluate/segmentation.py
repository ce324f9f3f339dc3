"""Segmentation metrics in physical units: Dice, IoU, HD95, ASD and volumes, per class and case.

Surface distances come from MONAI's metric functions with the voxel spacing, so they are in
millimetres on anisotropic grids (``hd95_mm``, ``asd_mm``), and sizes are in mL for volumes
(``volume_pred_ml``, ``volume_true_ml``) and cm2 for 2D images (``area_pred_cm2``, ...). When
either image gave no pixel size (a PNG export, see
:attr:`~medlabel.image.MedicalImage.spacing_known`) the same metrics are in grid units and
named so: ``hd95_px``, ``asd_px``, ``area_pred_px`` (``volume_pred_voxels`` in 3D). Conventions
for empty structures: when both the prediction and the truth are empty a class scores Dice 1
and distances 0; when only one is empty Dice is 0 and the distances are undefined (``None`` in
JSON, skipped by the summaries and counted in ``n_undefined``).

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> truth = np.zeros((20, 20), np.uint8); truth[5:15, 5:15] = 1
    >>> pred = np.zeros_like(truth); pred[5:15, 6:16] = 1
    >>> m = case_metrics(MedicalImage(pred, spacing=(2, 2)), MedicalImage(truth, spacing=(2, 2)),
    ...                  {1: "lesion"})
    >>> m["lesion"]["dice"], m["lesion"]["hd95_mm"]
    (0.9, 2.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medlabel.evaluate.errors import EvaluationError
from medlabel.image import SIZE_UNITS, MedicalImage, same_grid
from medlabel.segment.labelmap import distance_key, true_size  # re-exported: metric key names

__all__ = [
    "SEGMENTATION_METRICS",
    "case_metrics",
    "distance_key",
    "mask_metrics",
    "summarize_cases",
    "true_size",
]

#: Per-class metrics of :func:`case_metrics`.
SEGMENTATION_METRICS = (
    "dice",
    "iou",
    "hd95_mm",
    "asd_mm",
    "volume_pred_ml",
    "volume_true_ml",
    "volume_diff_pct",
)
"""Metric keys of a 3D structure with a known spacing (2D: ``area_*_cm2``; grid units: ``*_px``)."""


def _surface(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p = torch.as_tensor(pred[None, None])
    t = torch.as_tensor(truth[None, None])
    sp = list(spacing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=sp)
        asd = compute_average_surface_distance(
            p, t, include_background=True, symmetric=True, spacing=sp
        )
    return float(hd.item()), float(asd.item())


def mask_metrics(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None
) -> dict[str, float | None]:
    """Metrics of one binary structure; ``spacing`` in ITK order ``(x, y[, z])`` (mm), or
    ``None`` when the pixel size is not known: then sizes and distances are in grid units (see the
    module docstring for the keys).

    Example:
        >>> a = np.zeros((4, 4), bool); a[1:3, 1:3] = True
        >>> sorted(mask_metrics(a, a, None))
        ['area_pred_px', 'area_true_px', 'asd_px', 'dice', 'hd95_px', 'iou', 'volume_diff_pct']
    """
    p = np.asarray(pred, bool)
    t = np.asarray(truth, bool)
    if p.shape != t.shape:
        raise EvaluationError(
            None, f"prediction shape {p.shape} differs from truth shape {t.shape}"
        )
    sp = tuple(float(s) for s in (spacing or (1.0,) * p.ndim))[::-1]
    dims = 3 if p.ndim == 3 else 2
    unit, scale = SIZE_UNITS[(dims, spacing is not None)]
    stem, unit = ("volume" if dims == 3 else "area"), unit.lower()
    each = float(np.prod(sp)) * scale
    hd_key, asd_key = ("hd95_mm", "asd_mm") if spacing is not None else ("hd95_px", "asd_px")
    n_p, n_t, inter = int(p.sum()), int(t.sum()), int((p & t).sum())
    union = n_p + n_t - inter
    out: dict[str, float | None] = {
        "dice": 1.0 if n_p + n_t == 0 else 2.0 * inter / (n_p + n_t),
        "iou": 1.0 if union == 0 else inter / union,
        f"{stem}_pred_{unit}": n_p * each,
        f"{stem}_true_{unit}": n_t * each,
        "volume_diff_pct": None if n_t == 0 else 100.0 * (n_p - n_t) / n_t,
    }
    if n_p == 0 and n_t == 0:
        out[hd_key], out[asd_key] = 0.0, 0.0
    elif n_p == 0 or n_t == 0:
        out[hd_key], out[asd_key] = None, None
    else:
        hd, asd = _surface(p, t, sp)
        out[hd_key] = hd if math.isfinite(hd) else None
        out[asd_key] = asd if math.isfinite(asd) else None
    return out


def case_metrics(
    pred: MedicalImage, truth: MedicalImage, labels: Mapping[int, str]
) -> dict[str, dict[str, float | None]]:
    """Per-class metrics of one case: ``{class_name: {metric: value}}``; in grid units when
    either image's pixel size is unknown.

    Raises:
        EvaluationError: the two label maps lie on different grids, or either holds a value
            that is not a declared class.
    """
    if not same_grid(pred, truth):
        raise EvaluationError(
            pred.metadata.get("path"),
            f"prediction grid (size {pred.size}, spacing {pred.spacing}) differs from the truth's "
            f"(size {truth.size}, spacing {truth.spacing}); resample one onto the other first",
        )
    known = {0, *labels}
    for name, image in (("prediction", pred), ("truth", truth)):
        extra = sorted(set(np.unique(image.array).tolist()) - known)
        if extra:
            raise EvaluationError(
                image.metadata.get("path"),
                f"the {name} holds label values {extra} outside the declared classes "
                f"{sorted(labels)}",
            )
    spacing = pred.spacing if pred.spacing_known and truth.spacing_known else None
    return {
        name: mask_metrics(pred.array == value, truth.array == value, spacing)
        for value, name in sorted(labels.items())
    }


def summarize_cases(
    cases: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Across cases, per class and metric: mean, sd, median, min, max, ``n``, ``n_undefined``,
    and a 95 % bootstrap interval of the mean Dice (``dice_ci``).

    Example:
        >>> s = summarize_cases({"a": {"lung": {"dice": 0.9}}, "b": {"lung": {"dice": 0.8}}},
        ...                     n_bootstrap=0)
        >>> round(s["lung"]["dice"]["mean"], 3), s["lung"]["dice"]["min"]
        (0.85, 0.8)
    """
    classes = sorted({c for case in cases.values() for c in case})
    out: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    for cls in classes:
        entry: dict[str, Any] = {}
        metric_names = sorted({m for case in cases.values() for m in case.get(cls, {})})
        for metric in metric_names:
            raw = [case.get(cls, {}).get(metric) for case in cases.values()]
            values = np.array([v for v in raw if v is not None], dtype=float)
            if values.size == 0:
                entry[metric] = {"n": 0, "n_undefined": len(raw)}
                continue
            entry[metric] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "median": float(np.median(values)),
                "min": float(values.min()),
                "max": float(values.max()),
                "n": int(values.size),
                "n_undefined": len(raw) - int(values.size),
            }
            if metric == "dice" and n_bootstrap and values.size > 1:
                means = rng.choice(values, (n_bootstrap, values.size)).mean(axis=1)
                entry["dice_ci"] = [
                    float(np.percentile(means, 2.5)),
                    float(np.percentile(means, 97.5)),
                ]
        out[cls] = entry
    return out
