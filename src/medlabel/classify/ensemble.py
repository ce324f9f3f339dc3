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

__all__ = ["calibrate_ensemble", "calibrate_logits", "mean_logits"]


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
    return calibrate_logits(logits, first.val_labels, first.task, first.config.threshold_criterion)


def calibrate_logits(
    logits: np.ndarray, labels: np.ndarray, task: str, criterion: str = "youden"
) -> tuple[float, float | None]:
    """Temperature and (binary) threshold fitted on validation ``logits`` and ``labels``.

    Multi-label tasks keep temperature 1 and no threshold.

    Example:
        >>> logits = np.array([[2.0, -2.0], [-1.0, 1.0], [1.5, -0.5], [-2.0, 2.5]])
        >>> t, thr = calibrate_logits(logits, np.array([0, 1, 1, 1]), "binary")
        >>> t > 0 and 0 <= thr <= 1
        True
    """
    if task == "multilabel":
        return 1.0, None
    temperature = float(TemperatureScaler().fit(logits, labels).temperature)
    threshold = None
    if task == "binary":
        probs = probabilities(logits / temperature, task)
        threshold = float(choose_threshold(labels, probs[:, 1], criterion))  # type: ignore[arg-type]
    return temperature, threshold
