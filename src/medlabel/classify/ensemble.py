"""Ensembles: averaging members' logits, then one temperature and threshold on validation.

All members of a bundle share the validation split (same seed for the split), so their
validation logits can be averaged case by case.

Example:
    >>> import numpy as np
    >>> mean_logits([np.ones((2, 2)), 3 * np.ones((2, 2))]).tolist()
    [[2.0, 2.0], [2.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medlabel.classify.train import TrainedClassifier, fit_calibration
from medlabel.errors import MedlabelError

__all__ = ["calibrate_ensemble", "mean_logits"]


def mean_logits(logits: Sequence[np.ndarray]) -> np.ndarray:
    """Case-wise mean of several logit matrices."""
    return np.mean(np.stack(logits), axis=0)


def calibrate_ensemble(members: Sequence[TrainedClassifier]) -> tuple[float, float | None]:
    """Temperature and (binary) threshold for the members' averaged validation logits.

    Raises:
        MedlabelError: members were validated on different cases.
    """
    first = members[0]
    if any(
        m.val_labels.shape != first.val_labels.shape
        or not np.array_equal(m.val_labels, first.val_labels)
        for m in members
    ):
        raise MedlabelError(None, "ensemble members were validated on different cases")
    logits = mean_logits([m.val_logits for m in members])
    temperature, threshold, note = fit_calibration(
        logits, first.val_labels, first.task, first.config.threshold_criterion
    )
    if note:  # too few validation images, or a degenerate fit: keep the first member's
        return first.temperature, first.threshold
    return temperature, threshold
