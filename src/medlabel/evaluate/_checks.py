"""Validation of labels and probabilities shared by metrics, calibration, plots and the report.

Every public function of :mod:`medlabel.evaluate` funnels its ``y_true``/``probs`` through
:func:`check_inputs`, so all of them accept the same shapes and reject bad input with the same
:class:`~medlabel.evaluate.errors.EvaluationError` messages.

Example:
    >>> import numpy as np
    >>> checked = check_inputs([0, 1, 1], np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]))
    >>> checked.task, checked.n, checked.n_classes, checked.class_names
    ('binary', 3, 2, ('0', '1'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from medlabel.evaluate.errors import EvaluationError

__all__ = ["PROB_TOLERANCE", "TASKS", "Checked", "Task", "check_inputs", "top_label"]

#: The kinds of classification task the evaluation layer understands.
Task = Literal["binary", "multiclass", "multilabel", "ordinal"]
TASKS: tuple[str, ...] = get_args(Task)

#: Allowed deviation of a single-label probability row's sum from one.
PROB_TOLERANCE = 1e-3
_RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Checked:
    """Validated inputs.

    Attributes:
        y: ``(N,)`` int64 class indices, or ``(N, K)`` int64 0/1 indicators for multilabel.
        probs: ``(N, K)`` float64 probabilities clipped to ``[0, 1]``.
        task: the given or inferred task.
        class_names: ``K`` unique names (``"0"``, ``"1"``, ... when none were given).
    """

    y: np.ndarray
    probs: np.ndarray
    task: Task
    class_names: tuple[str, ...]

    @property
    def n(self) -> int:
        """Number of cases."""
        return int(self.probs.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes (labels for multilabel), ``K``."""
        return int(self.probs.shape[1])

    @property
    def single_label(self) -> bool:
        """True for binary, multiclass and ordinal tasks (one class per case)."""
        return self.task != "multilabel"


def _as_float(values: object, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(None, f"{what} is not numeric: {exc}") from exc
    if np.isnan(array).any():
        raise EvaluationError(None, f"{what} contains NaN")
    if np.isinf(array).any():
        raise EvaluationError(None, f"{what} contains infinite values")
    return array


def _as_labels(values: object, what: str) -> np.ndarray:
    array = _as_float(values, what)
    if not np.array_equal(array, np.round(array)):
        raise EvaluationError(None, f"{what} must hold whole-number class labels")
    return array.astype(np.int64)


def check_inputs(
    y_true: object,
    probs: object,
    class_names: Sequence[str] | None = None,
    task: str | None = None,
) -> Checked:
    """Validate labels and probabilities and infer the task.

    Args:
        y_true: ``(N,)`` class indices (``(N, 1)`` is squeezed, as MedMNIST stores them), or
            ``(N, K)`` 0/1 indicators for multilabel.
        probs: ``(N, K)`` probabilities; for a binary task also ``(N,)`` positive-class
            probabilities, turned into the two columns ``[1 - p, p]``.
        class_names: ``K`` unique names, or ``None`` for ``"0"``, ``"1"``, ...
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"``, ``"ordinal"`` or ``None`` to
            infer: two-dimensional ``y_true`` is multilabel, two classes binary, else multiclass.

    Returns:
        The validated arrays with the task and class names.

    Raises:
        EvaluationError: on any inconsistency (shapes, lengths, ranges, NaN, names, task).

    Example:
        >>> check_inputs([[0, 1], [1, 1]], [[0.2, 0.9], [0.6, 0.7]]).task
        'multilabel'
    """
    if task is not None and task not in TASKS:
        raise EvaluationError(None, f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    p = _as_float(probs, "probs")
    y = _as_labels(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] == 1 and task != "multilabel":
        y = y[:, 0]
    if p.ndim == 1 and task in (None, "binary") and y.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 1:
        raise EvaluationError(None, f"probs must have shape (N, K); got {p.shape}")
    n, k = p.shape
    if n == 0:
        raise EvaluationError(None, "no cases to evaluate (probs has 0 rows)")
    if y.ndim not in (1, 2):
        raise EvaluationError(None, f"y_true must have shape (N,) or (N, K); got {y.shape}")
    if y.shape[0] != n:
        raise EvaluationError(None, f"y_true has {y.shape[0]} cases but probs has {n} rows")
    if task is None:
        task = "multilabel" if y.ndim == 2 else ("binary" if k == 2 else "multiclass")
    if p.min() < -_RANGE_TOLERANCE or p.max() > 1 + _RANGE_TOLERANCE:
        raise EvaluationError(
            None,
            f"probs must lie in [0, 1]; found values in [{p.min():.6g}, {p.max():.6g}] "
            "(apply softmax or sigmoid to logits first)",
        )
    p = np.clip(p, 0.0, 1.0)
    if task == "multilabel":
        if y.ndim != 2 or y.shape != p.shape:
            raise EvaluationError(
                None, f"multilabel y_true must have the shape of probs {p.shape}; got {y.shape}"
            )
        if not np.isin(y, (0, 1)).all():
            raise EvaluationError(None, "multilabel y_true must hold only 0 and 1")
    else:
        if y.ndim != 1:
            raise EvaluationError(None, f"{task} y_true must have shape (N,); got {y.shape}")
        if task == "binary" and k != 2:
            raise EvaluationError(None, f"a binary task needs 2 probability columns; got {k}")
        if k < 2:
            raise EvaluationError(None, f"a {task} task needs at least 2 classes; got {k}")
        bad = (y < 0) | (y >= k)
        if bad.any():
            raise EvaluationError(
                None, f"y_true holds labels outside 0..{k - 1}, e.g. {int(y[bad][0])}"
            )
        sums = p.sum(axis=1)
        worst = int(np.argmax(np.abs(sums - 1.0)))
        if abs(sums[worst] - 1.0) > PROB_TOLERANCE:
            raise EvaluationError(
                None,
                f"probability rows must sum to 1 for a {task} task (tolerance "
                f"{PROB_TOLERANCE}); row {worst} sums to {sums[worst]:.6g}",
            )
    names = tuple(str(i) for i in range(k)) if class_names is None else tuple(class_names)
    if len(names) != k:
        raise EvaluationError(None, f"got {len(names)} class names for {k} probability columns")
    if len(set(names)) != k:
        raise EvaluationError(None, f"class names must be unique; got {list(names)}")
    return Checked(y=y, probs=p, task=task, class_names=names)  # type: ignore[arg-type]


def top_label(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confidence of the most probable class and whether it is right, for each case.

    Args:
        y: ``(N,)`` class indices.
        probs: ``(N, K)`` probabilities, or ``(N,)`` positive-class probabilities of a binary
            problem (read as ``[1 - p, p]``).

    Returns:
        ``(confidence, correct)``: float64 and bool arrays of length ``N``. Ties go to the
        lower class index, as with :func:`numpy.argmax`.

    Example:
        >>> conf, ok = top_label(np.array([0, 1]), np.array([0.3, 0.4]))
        >>> conf.tolist(), ok.tolist()
        ([0.7, 0.6], [True, False])
    """
    p = np.stack([1.0 - probs, probs], axis=1) if probs.ndim == 1 else probs
    pred = np.argmax(p, axis=1)
    return p[np.arange(len(p)), pred], pred == y
