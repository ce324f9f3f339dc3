"""Uncertainty figures that mean something for review: higher means "look at this first".

Classification: the entropy of the calibrated probabilities, normalised to 0..1 by the
entropy of a uniform guess, and the margin between the two most likely classes.
Segmentation: the mean normalised voxel entropy inside the predicted structures (voxels far
from any structure say little), and, with test-time augmentation, how well the predictions
under the augmented views agree with the plain one (mean Dice).

Example:
    >>> import numpy as np
    >>> c = classification_uncertainty(np.array([0.5, 0.5]))
    >>> round(c["entropy"], 3), round(c["margin"], 3)
    (1.0, 0.0)
    >>> round(classification_uncertainty(np.array([0.99, 0.01]))["entropy"], 3)
    0.081
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["agreement", "classification_uncertainty", "structure_entropy"]


def _entropy(probs: np.ndarray, axis: int) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    k = probs.shape[axis]
    return -(p * np.log(p)).sum(axis=axis) / np.log(max(k, 2))


def classification_uncertainty(probs: np.ndarray, multilabel: bool = False) -> dict[str, float]:
    """``entropy`` (0 sure .. 1 uniform) and ``margin`` (top-1 minus top-2) of one prediction.

    For multi-label tasks each class is its own yes/no question: the entropy is the mean of
    the per-class binary entropies and the margin the smallest distance from 0.5, doubled.
    """
    p = np.asarray(probs, np.float64)
    if multilabel:
        binary = np.stack([p, 1 - p])
        return {
            "entropy": float(_entropy(binary, 0).mean()),
            "margin": float(np.min(np.abs(p - 0.5)) * 2),
        }
    top = np.sort(p)[::-1]
    margin = float(top[0] - top[1]) if len(top) > 1 else 1.0
    return {"entropy": float(_entropy(p, 0)), "margin": margin}


def structure_entropy(probs: np.ndarray) -> dict[str, float | None]:
    """Mean normalised voxel entropy inside the predicted foreground, overall and per class.

    ``probs`` is ``(K+1, *spatial)`` with background first; keys are ``"all"`` and the class
    indices as strings. ``None`` where nothing is predicted.

    Example:
        >>> p = np.zeros((2, 4, 4)); p[0] = 1; p[:, 1, 1] = [0.4, 0.6]
        >>> round(structure_entropy(p)["all"], 3)
        0.971
    """
    labels = np.argmax(probs, axis=0)
    ent = _entropy(probs, 0)
    out: dict[str, float | None] = {}
    fg = labels > 0
    out["all"] = float(ent[fg].mean()) if fg.any() else None
    for c in range(1, probs.shape[0]):
        sel = labels == c
        out[str(c)] = float(ent[sel].mean()) if sel.any() else None
    return out


def agreement(main: np.ndarray, views: Sequence[np.ndarray], classes: Sequence[int]) -> float:
    """Mean Dice between the plain label map and each augmented view, over classes present
    in either (1.0 when every view agrees exactly).

    Example:
        >>> a = np.zeros((4, 4), int); a[1:3, 1:3] = 1
        >>> b = a.copy(); b[1, 1] = 0
        >>> round(agreement(a, [a, b], [1]), 3)
        0.929
    """
    scores = []
    for view in views:
        for c in classes:
            p, q = main == c, view == c
            denom = int(p.sum() + q.sum())
            if denom:
                scores.append(2.0 * float((p & q).sum()) / denom)
    return float(np.mean(scores)) if scores else 1.0
