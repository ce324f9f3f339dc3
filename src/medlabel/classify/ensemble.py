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

from medlabel.classify.train import TrainedClassifier, probabilities
from medlabel.errors import MedlabelError
from medlabel.evaluate.calibration import TemperatureScaler, choose_threshold

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
    if first.task == "multilabel":
        return 1.0, None
    temperature = float(TemperatureScaler().fit(logits, first.val_labels).temperature)
    threshold = None
    if first.task == "binary":
        probs = probabilities(logits / temperature, first.task)
        threshold = float(
            choose_threshold(first.val_labels, probs[:, 1], first.config.threshold_criterion)  # type: ignore[arg-type]
        )
    return temperature, threshold
