"""Uncertainty figures that mean something for review: higher means "look at this first".

Classification: the entropy of the calibrated probabilities, normalised to 0..1 by the
entropy of a uniform guess, and the margin between the two most likely classes. A binary
model whose threshold was chosen on validation decides at that threshold, not at 0.5, so its
figures are measured from the threshold: the probability is first rescaled so that the
threshold sits at 0.5 (:func:`decision_centred`), and an image right at the threshold is the
least certain.
Segmentation figures (voxel entropy inside the structures, agreement under test-time
augmentation) come from :mod:`medlabel.segment.uncertainty`, where the bundles compute them.

Example:
    >>> import numpy as np
    >>> c = classification_uncertainty(np.array([0.5, 0.5]))
    >>> round(c["entropy"], 3), round(c["margin"], 3)
    (1.0, 0.0)
    >>> round(classification_uncertainty(np.array([0.99, 0.01]))["entropy"], 3)
    0.081
    >>> at = classification_uncertainty(np.array([0.14, 0.86]), threshold=0.86)
    >>> round(at["entropy"], 3), round(at["margin"], 3)
    (1.0, 0.0)
"""

from __future__ import annotations

import numpy as np

from medlabel.segment.uncertainty import normalised_entropy as _entropy

__all__ = ["classification_uncertainty", "decision_centred"]


def decision_centred(positive: float, threshold: float) -> float:
    """The positive class's probability mapped piecewise linearly so that ``threshold`` goes
    to 0.5 (0 and 1 stay): how far a binary decision at ``threshold`` is from flipping, on
    the scale of a decision at 0.5.

    Example:
        >>> decision_centred(0.86, 0.86), decision_centred(0.43, 0.86), decision_centred(1, 0.86)
        (0.5, 0.25, 1.0)
    """
    t = float(np.clip(threshold, 1e-6, 1 - 1e-6))
    p = float(positive)
    return p / (2 * t) if p < t else 0.5 + (p - t) / (2 * (1 - t))


def classification_uncertainty(
    probs: np.ndarray, multilabel: bool = False, threshold: float | None = None
) -> dict[str, float]:
    """``entropy`` (0 sure .. 1 uniform) and ``margin`` (top-1 minus top-2) of one prediction.

    For multi-label tasks each class is its own yes/no question: the entropy is the mean of
    the per-class binary entropies and the margin the smallest distance from 0.5, doubled.
    ``threshold``: a binary model's decision threshold on the second class's probability;
    both figures are then measured from it (:func:`decision_centred`).
    """
    p = np.asarray(probs, np.float64)
    if threshold is not None and not multilabel and p.shape == (2,):
        q = decision_centred(p[1], threshold)
        p = np.array([1.0 - q, q])
    if multilabel:
        binary = np.stack([p, 1 - p])
        return {
            "entropy": float(_entropy(binary, 0).mean()),
            "margin": float(np.min(np.abs(p - 0.5)) * 2),
        }
    top = np.sort(p)[::-1]
    margin = float(top[0] - top[1]) if len(top) > 1 else 1.0
    return {"entropy": float(_entropy(p, 0)), "margin": margin}
