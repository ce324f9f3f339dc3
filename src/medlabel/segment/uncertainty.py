"""Uncertainty of a segmentation: where the network hesitates, and how stable it is.

The mean normalised voxel entropy inside the predicted structures (voxels far from any
structure say little), and, with test-time augmentation, how well the label maps under
augmented views agree with the plain one (mean Dice).

Example:
    >>> import numpy as np
    >>> round(float(normalised_entropy(np.array([0.5, 0.5]), 0)), 3)
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["agreement", "normalised_entropy", "structure_entropy"]


def normalised_entropy(probs: np.ndarray, axis: int) -> np.ndarray:
    """Entropy along ``axis`` divided by that of a uniform guess (0 sure .. 1 uniform)."""
    p = np.clip(probs, 1e-12, 1.0)
    k = probs.shape[axis]
    return -(p * np.log(p)).sum(axis=axis) / np.log(max(k, 2))


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
    ent = normalised_entropy(probs, 0)
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
