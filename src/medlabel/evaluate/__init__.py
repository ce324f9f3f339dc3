"""Evaluation of classifiers: metrics with confidence intervals, calibration, plots, report.

Modules, one concept each:

* :mod:`~medlabel.evaluate.metrics`: :func:`classification_metrics` (the content of
  ``metrics.json``, including MedMNIST-protocol ACC/AUC and bootstrap intervals)
* :mod:`~medlabel.evaluate.calibration`: :func:`expected_calibration_error`,
  :func:`reliability_curve`, :class:`TemperatureScaler`, :func:`choose_threshold`
* :mod:`~medlabel.evaluate.plots`: PNG figures (:func:`plot_confusion_matrix`,
  :func:`plot_roc`, :func:`plot_pr`, :func:`plot_reliability`) and curve data
  (:func:`roc_curves`, :func:`pr_curves`)
* :mod:`~medlabel.evaluate.report`: :func:`write_classification_report` (``metrics.json`` and a
  self-contained ``report.html``)
* :mod:`~medlabel.evaluate.errors`: :class:`EvaluationError`

Fit temperatures and choose thresholds on validation data; evaluate once on test data.

Example:
    >>> import numpy as np
    >>> from medlabel import evaluate
    >>> y, p = [0, 1, 1, 0], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    >>> m = evaluate.classification_metrics(y, p, ["normal", "pneumonia"], n_bootstrap=0)
    >>> m["accuracy"], m["auc"], m["medmnist"]
    (0.75, 1.0, {'acc': 0.75, 'auc': 1.0})
"""

from medlabel.evaluate._checks import TASKS, Task
from medlabel.evaluate.calibration import (
    TemperatureScaler,
    choose_threshold,
    expected_calibration_error,
    reliability_curve,
)
from medlabel.evaluate.errors import EvaluationError
from medlabel.evaluate.metrics import CI_METRICS, classification_metrics, medmnist_scores
from medlabel.evaluate.plots import (
    Curve,
    plot_confusion_matrix,
    plot_pr,
    plot_reliability,
    plot_roc,
    pr_curves,
    roc_curves,
)
from medlabel.evaluate.report import REQUIRED_METRIC_KEYS, write_classification_report

__all__ = [
    "CI_METRICS",
    "REQUIRED_METRIC_KEYS",
    "TASKS",
    "Curve",
    "EvaluationError",
    "Task",
    "TemperatureScaler",
    "choose_threshold",
    "classification_metrics",
    "expected_calibration_error",
    "medmnist_scores",
    "plot_confusion_matrix",
    "plot_pr",
    "plot_reliability",
    "plot_roc",
    "pr_curves",
    "reliability_curve",
    "roc_curves",
    "write_classification_report",
]
