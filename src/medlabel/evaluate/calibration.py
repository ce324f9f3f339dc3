"""Calibration: how far predicted probabilities are from observed frequencies, and fixes.

* :func:`expected_calibration_error` and :func:`reliability_curve` measure calibration of the
  *top-label* confidence (the probability of the predicted class) in equal-width bins.
* :class:`TemperatureScaler` divides logits by one temperature ``T > 0`` fitted on validation
  data by minimising the negative log-likelihood; it changes confidence, never the ranking.
* :func:`choose_threshold` picks the operating point of a binary classifier.

Fit the temperature and choose the threshold on **validation** data only, then apply both
unchanged to the test set; choosing them on the test set makes the test metrics optimistic.

Example:
    >>> import numpy as np
    >>> expected_calibration_error([1, 0, 1, 1], np.array([0.9, 0.1, 0.9, 0.6]), n_bins=10)
    0.175
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_expit, log_softmax

from medlabel.evaluate._checks import Checked, check_inputs, top_label
from medlabel.evaluate.errors import EvaluationError

__all__ = [
    "TemperatureScaler",
    "checked_ece",
    "choose_threshold",
    "expected_calibration_error",
    "reliability_curve",
]

logger = logging.getLogger(__name__)


def _top_label_pairs(checked: Checked) -> list[tuple[np.ndarray, np.ndarray]]:
    """(confidence, correct) per problem: one for single-label, one per label for multilabel."""
    if checked.single_label:
        return [top_label(checked.y, checked.probs)]
    return [top_label(checked.y[:, k], checked.probs[:, k]) for k in range(checked.n_classes)]


def _bin_stats(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise EvaluationError(None, f"n_bins must be a positive integer; got {n_bins!r}")
    # Bins are (lo, hi] on [0, 1]; a confidence of exactly 0 joins the first bin.
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(index, weights=correct.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return conf_sum / count, hit_sum / count, count


def reliability_curve(
    y_true: object, probs: object, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, accuracy and number of cases in each of ``n_bins`` equal-width bins.

    Args:
        y_true: ``(N,)`` class indices, or ``(N, K)`` 0/1 indicators (multilabel: every
            (case, label) pair is pooled as one binary prediction).
        probs: ``(N, K)`` probabilities, or ``(N,)`` positive-class probabilities (binary).
        n_bins: number of bins ``(i / n_bins, (i + 1) / n_bins]`` over the confidence.

    Returns:
        ``(bin_confidence, bin_accuracy, bin_count)``, each of length ``n_bins``. Empty bins
        have count 0 and NaN confidence and accuracy.

    Raises:
        EvaluationError: on invalid labels or probabilities, or ``n_bins < 1``.

    Example:
        >>> conf, acc, count = reliability_curve([1, 0], np.array([0.9, 0.3]), n_bins=2)
        >>> conf.tolist(), acc.tolist(), count.tolist()
        ([nan, 0.8], [nan, 1.0], [0, 2])
    """
    pairs = _top_label_pairs(check_inputs(y_true, probs))
    confidence = np.concatenate([c for c, _ in pairs])
    correct = np.concatenate([ok for _, ok in pairs])
    return _bin_stats(confidence, correct, n_bins)


def expected_calibration_error(y_true: object, probs: object, n_bins: int = 15) -> float:
    """Expected calibration error of the top-label confidence.

    ``ECE = sum_b (n_b / N) * |accuracy_b - confidence_b|`` over equal-width bins. For a
    multilabel problem it is the mean over labels of each label's binary ECE.

    Args:
        y_true: ``(N,)`` class indices, or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities, or ``(N,)`` positive-class probabilities (binary).
        n_bins: number of equal-width bins on ``[0, 1]`` (15 is the common choice).

    Returns:
        The ECE in ``[0, 1]``; 0 is perfect calibration.

    Raises:
        EvaluationError: on invalid labels or probabilities, or ``n_bins < 1``.

    Example:
        >>> expected_calibration_error([0, 1], np.array([[0.7, 0.3], [0.2, 0.8]]), n_bins=10)
        0.25
    """
    return checked_ece(check_inputs(y_true, probs), n_bins)


def checked_ece(checked: Checked, n_bins: int = 15) -> float:
    """:func:`expected_calibration_error` of inputs already validated (task kept as given).

    Args:
        checked: validated inputs.
        n_bins: number of equal-width bins.

    Returns:
        The ECE (multilabel: mean over labels).
    """
    values = []
    for confidence, correct in _top_label_pairs(checked):
        conf, acc, count = _bin_stats(confidence, correct, n_bins)
        filled = count > 0
        values.append(float(np.sum(count[filled] * np.abs(acc[filled] - conf[filled]))))
        values[-1] /= len(confidence)
    return round(float(np.mean(values)), 12)


class TemperatureScaler:
    """Post-hoc calibration by one temperature: ``probs = softmax(logits / T)``.

    One-dimensional logits are binary (``sigmoid(logit / T)`` is the positive-class
    probability); two-dimensional logits are softmax logits, or independent sigmoid logits when
    the scaler was fitted with ``(N, K)`` 0/1 targets (multilabel). Fit on validation logits.

    Args:
        temperature: the starting (or known) temperature, ``> 0``.
        bounds: the search interval for :meth:`fit`; a fitted value at a bound is logged as a
            warning (the data may be separable or the logits constant).

    Attributes:
        temperature: the temperature ``T``; ``T > 1`` softens over-confident predictions.
        multilabel: whether 2-D logits are read as independent sigmoid logits.
        nll_before: validation NLL at ``T = 1`` (after :meth:`fit`).
        nll_after: validation NLL at the fitted ``T`` (after :meth:`fit`).

    Example:
        >>> logits = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
        >>> scaler = TemperatureScaler().fit(logits, [0, 1, 1, 1])
        >>> scaler.temperature > 1, scaler.nll_after < scaler.nll_before
        (True, True)
        >>> TemperatureScaler.from_dict(scaler.to_dict()).temperature == scaler.temperature
        True
    """

    def __init__(
        self, temperature: float = 1.0, *, bounds: tuple[float, float] = (0.05, 20.0)
    ) -> None:
        if not np.isfinite(temperature) or temperature <= 0:
            raise EvaluationError(None, f"temperature must be > 0; got {temperature!r}")
        low, high = bounds
        if not 0 < low < high or not np.isfinite(high):
            raise EvaluationError(None, f"bounds must satisfy 0 < low < high; got {bounds!r}")
        self.temperature = float(temperature)
        self.bounds = (float(low), float(high))
        self.multilabel = False
        self.nll_before: float | None = None
        self.nll_after: float | None = None

    @staticmethod
    def _logits(logits: object) -> np.ndarray:
        try:
            z = np.asarray(logits, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(None, f"logits are not numeric: {exc}") from exc
        if z.ndim not in (1, 2) or z.shape[0] == 0:
            raise EvaluationError(None, f"logits must have shape (N,) or (N, K); got {z.shape}")
        if not np.isfinite(z).all():
            raise EvaluationError(None, "logits contain NaN or infinite values")
        return z

    def _nll(self, z: np.ndarray, y: np.ndarray, temperature: float, multilabel: bool) -> float:
        x = z / temperature
        if z.ndim == 1 or multilabel:
            # -log p(y) for sigmoid outputs: -[y log s(x) + (1 - y) log s(-x)].
            return float(-np.mean(y * log_expit(x) + (1 - y) * log_expit(-x)))
        return float(-np.mean(log_softmax(x, axis=1)[np.arange(len(y)), y]))

    def nll(self, logits: object, y: object) -> float:
        """Mean negative log-likelihood of ``y`` under the current temperature.

        Args:
            logits: as for :meth:`fit`.
            y: as for :meth:`fit`.

        Returns:
            The mean NLL in nats.
        """
        z, target, multilabel = self._check(logits, y, self.multilabel)
        return self._nll(z, target, self.temperature, multilabel)

    def _check(
        self, logits: object, y: object, multilabel: bool | None
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        z = self._logits(logits)
        try:
            target_f = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(None, f"y is not numeric: {exc}") from exc
        if target_f.shape[:1] != z.shape[:1]:
            raise EvaluationError(
                None, f"y has {target_f.shape[:1]} cases but logits have {z.shape[0]} rows"
            )
        if not np.isfinite(target_f).all() or not np.array_equal(target_f, np.round(target_f)):
            raise EvaluationError(None, "y must hold whole-number class labels")
        target = target_f.astype(np.int64)
        if multilabel is None:
            multilabel = z.ndim == 2 and target.ndim == 2
        k = 2 if z.ndim == 1 else z.shape[1]
        if z.ndim == 1 or multilabel:
            if target.shape != z.shape or not np.isin(target, (0, 1)).all():
                raise EvaluationError(None, f"y must be 0/1 with the shape of logits {z.shape}")
        elif target.ndim != 1 or target.min() < 0 or target.max() >= k:
            raise EvaluationError(None, f"y must be (N,) class indices in 0..{k - 1}")
        return z, target, multilabel

    def fit(self, logits: object, y: object) -> TemperatureScaler:
        """Fit ``T`` by minimising the validation NLL over ``log T`` within :attr:`bounds`.

        A coarse grid locates the minimum, then bounded Brent refines it, so the result does
        not depend on a starting point.

        Args:
            logits: ``(N, K)`` softmax logits, ``(N,)`` binary logits, or ``(N, K)`` sigmoid
                logits for multilabel (with ``(N, K)`` 0/1 ``y``).
            y: ``(N,)`` class indices, ``(N,)`` 0/1 for binary logits, or ``(N, K)`` 0/1.

        Returns:
            ``self``, fitted.

        Raises:
            EvaluationError: on non-finite logits or labels that do not fit the logits.
        """
        z, target, multilabel = self._check(logits, y, None)
        grid = np.linspace(np.log(self.bounds[0]), np.log(self.bounds[1]), 41)
        values = np.array([self._nll(z, target, float(np.exp(u)), multilabel) for u in grid])
        self.multilabel = multilabel
        self.nll_before = self._nll(z, target, 1.0, multilabel)
        if np.ptp(values) < 1e-12:
            logger.warning("temperature scaling: NLL does not depend on T; keeping T = 1")
            self.temperature, self.nll_after = 1.0, self.nll_before
            return self
        best = int(np.argmin(values))
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        result = minimize_scalar(
            lambda u: self._nll(z, target, float(np.exp(u)), multilabel),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-6},
        )
        u_best = float(result.x) if result.fun <= values[best] else float(grid[best])
        self.temperature = float(np.exp(u_best))
        self.nll_after = self._nll(z, target, self.temperature, multilabel)
        if best in (0, len(grid) - 1):
            logger.warning(
                "temperature scaling: fitted T = %.4g lies at the search bound %s",
                self.temperature,
                self.bounds,
            )
        return self

    def transform(self, logits: object) -> np.ndarray:
        """Calibrated probabilities.

        Args:
            logits: ``(N, K)`` or ``(N,)`` logits, of the same kind as in :meth:`fit`.

        Returns:
            ``(N, K)`` softmax probabilities; ``(N,)`` positive-class probabilities for 1-D
            logits; ``(N, K)`` independent sigmoid probabilities for a multilabel scaler.
        """
        x = self._logits(logits) / self.temperature
        if x.ndim == 1 or self.multilabel:
            return np.exp(log_expit(x))
        return np.exp(log_softmax(x, axis=1))

    def to_dict(self) -> dict[str, float | bool]:
        """JSON-ready settings, e.g. for a model bundle's config."""
        return {"temperature": self.temperature, "multilabel": self.multilabel}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TemperatureScaler:
        """Rebuild a scaler saved with :meth:`to_dict`.

        Raises:
            EvaluationError: when the temperature is missing or not a positive number.
        """
        value = data.get("temperature")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise EvaluationError(None, f"temperature must be a number; got {value!r}")
        scaler = cls(float(value))
        scaler.multilabel = bool(data.get("multilabel", False))
        return scaler


def choose_threshold(
    y_true: object,
    p_pos: object,
    criterion: Literal["youden", "balanced_accuracy", "f1"] = "youden",
) -> float:
    """Choose the decision threshold of a binary classifier (predict positive if ``p >= t``).

    Use **validation** data only; pass the result as ``threshold`` when computing test
    metrics. Every distinct score is a candidate cut; among equally good cuts, the one nearest
    0.5 wins. The returned value lies midway between the chosen score and the next lower one,
    which gives the same decisions on these data and a margin on new data.

    Args:
        y_true: ``(N,)`` 0/1 labels with both classes present.
        p_pos: ``(N,)`` positive-class probabilities (or ``(N, 2)``, column 1 is used).
        criterion: ``"youden"`` maximises sensitivity + specificity - 1;
            ``"balanced_accuracy"`` maximises their mean (the same cut as Youden's J);
            ``"f1"`` maximises the positive class's F1 score.

    Returns:
        The threshold in ``[0, 1]``.

    Raises:
        EvaluationError: on an unknown criterion, invalid input, or a single class present.

    Example:
        >>> choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.7, 0.8])
        0.5
    """
    if criterion not in ("youden", "balanced_accuracy", "f1"):
        raise EvaluationError(
            None, f"unknown criterion {criterion!r}; use youden, balanced_accuracy or f1"
        )
    checked = check_inputs(y_true, p_pos, task="binary")
    y, p = checked.y, checked.probs[:, 1]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise EvaluationError(None, "choose_threshold needs both classes in y_true")
    scores = np.unique(p)
    # Cut i predicts positive for p >= scores[i]: threshold midway to the next lower score.
    cuts = scores.copy()
    middle = (scores[1:] + scores[:-1]) / 2
    cuts[1:] = np.where(middle > scores[:-1], middle, scores[1:])
    tp = n_pos - np.searchsorted(np.sort(p[y == 1]), scores, side="left")
    fp = n_neg - np.searchsorted(np.sort(p[y == 0]), scores, side="left")
    if criterion == "f1":
        value = 2 * tp / (2 * tp + fp + (n_pos - tp))
    else:
        value = tp / n_pos - fp / n_neg
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])
