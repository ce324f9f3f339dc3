"""Uncertainty figures that mean something for review: higher means "look at this first".

Classification: the entropy of the calibrated probabilities, normalised to 0..1 by the
entropy of a uniform guess, and the margin between the two most likely classes.
Segmentation figures (voxel entropy inside the structures, agreement under test-time
augmentation) come from :mod:`medlabel.segment.uncertainty`, where the bundles compute them.

Example:
    >>> import numpy as np
    >>> c = classification_uncertainty(np.array([0.5, 0.5]))
    >>> round(c["entropy"], 3), round(c["margin"], 3)
    (1.0, 0.0)
    >>> round(classification_uncertainty(np.array([0.99, 0.01]))["entropy"], 3)
    0.081
"""

from __future__ import annotations

import numpy as np

from medlabel.segment.uncertainty import normalised_entropy as _entropy

__all__ = ["classification_uncertainty"]


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
