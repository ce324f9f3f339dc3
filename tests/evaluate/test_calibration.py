"""Tests of medlabel.evaluate.calibration: ECE, reliability curve, temperature, threshold."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.evaluate import (
    EvaluationError,
    TemperatureScaler,
    choose_threshold,
    expected_calibration_error,
    reliability_curve,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row drawn from its probabilities."""
    return np.minimum((rng.random((len(probs), 1)) > probs.cumsum(axis=1)).sum(axis=1), 4)


def test_ece_near_zero_for_calibrated_binary_data() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(100_000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.01


def test_ece_near_zero_for_calibrated_multiclass_data() -> None:
    rng = np.random.default_rng(1)
    probs = _softmax(rng.normal(size=(50_000, 5)) * 1.5)
    y = _sample(probs, rng)
    assert expected_calibration_error(y, probs) < 0.01


def test_ece_large_for_overconfident_predictions() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(20_000, 5))
    y = _sample(_softmax(logits), rng)
    assert expected_calibration_error(y, _softmax(4 * logits)) > 0.15


def test_ece_by_hand_and_reliability_bins() -> None:
    y = [1, 0, 1, 1]
    p = np.array([0.9, 0.2, 0.7, 0.4])  # top-label confidence .9 .8 .7 .6; the last is wrong
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.0)  # .75 vs .75
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx((0.1 + 0.2 + 0.3 + 0.6) / 4)
    conf, acc, count = reliability_curve(y, p, n_bins=4)
    assert count.tolist() == [0, 0, 2, 2]
    assert conf[2:] == pytest.approx([0.65, 0.85])
    assert acc[2:] == pytest.approx([0.5, 1.0])
    assert np.isnan(conf[:2]).all() and np.isnan(acc[:2]).all()


def test_ece_multilabel_is_mean_over_labels() -> None:
    y = np.array([[1, 0], [0, 0], [1, 1]])
    probs = np.array([[0.9, 0.3], [0.2, 0.1], [0.6, 0.8]])
    per_label = [expected_calibration_error(y[:, j], probs[:, j]) for j in range(2)]
    assert expected_calibration_error(y, probs) == pytest.approx(np.mean(per_label))


def test_ece_rejects_bad_bins() -> None:
    with pytest.raises(EvaluationError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.7], n_bins=0)


def test_temperature_recovers_two_and_reduces_nll() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(20_000, 5)) * 1.5
    y = _sample(_softmax(logits), rng)
    scaler = TemperatureScaler().fit(2 * logits, y)
    assert scaler.temperature == pytest.approx(2.0, abs=0.1)
    assert scaler.nll_after is not None and scaler.nll_before is not None
    assert scaler.nll_after < scaler.nll_before
    probs = scaler.transform(2 * logits)
    assert np.allclose(probs.sum(axis=1), 1)
    assert expected_calibration_error(y, probs) < expected_calibration_error(
        y, _softmax(2 * logits)
    )
    # Ranking is unchanged.
    assert np.array_equal(probs.argmax(axis=1), logits.argmax(axis=1))


def test_temperature_binary_logits_and_round_trip() -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=10_000) * 2
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    scaler = TemperatureScaler().fit(3 * z, y)
    assert scaler.temperature == pytest.approx(3.0, abs=0.2)
    p = scaler.transform(3 * z)
    assert p.shape == z.shape and np.all((p > 0) & (p < 1))
    again = TemperatureScaler.from_dict(scaler.to_dict())
    assert np.allclose(again.transform(3 * z), p)


def test_temperature_multilabel_sigmoid() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(5_000, 3)) * 2
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    scaler = TemperatureScaler().fit(0.5 * z, y)
    assert scaler.multilabel
    assert scaler.temperature == pytest.approx(0.5, abs=0.05)
    assert scaler.transform(z).shape == z.shape


def test_temperature_separable_data_stays_within_bounds() -> None:
    logits = np.array([[5.0, -5.0], [-5.0, 5.0]] * 10)
    y = np.array([0, 1] * 10)
    scaler = TemperatureScaler(bounds=(0.05, 20.0)).fit(logits, y)
    assert 0.05 <= scaler.temperature <= 0.06


@pytest.mark.parametrize(
    ("logits", "y", "message"),
    [
        (np.array([[np.nan, 0.0]]), [0], "NaN"),
        (np.zeros((3, 2)), [0, 1], "cases"),
        (np.zeros((2, 2)), [0, 2], "class indices"),
        (np.zeros(2), [0, 2], "0/1"),
    ],
)
def test_temperature_bad_input(logits: np.ndarray, y: list[int], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        TemperatureScaler().fit(logits, y)


def test_temperature_rejects_bad_settings() -> None:
    with pytest.raises(EvaluationError):
        TemperatureScaler(0.0)
    with pytest.raises(EvaluationError):
        TemperatureScaler.from_dict({"temperature": "hot"})


@pytest.mark.parametrize("criterion", ["youden", "balanced_accuracy", "f1"])
def test_choose_threshold_separable(criterion: str) -> None:
    rng = np.random.default_rng(6)
    neg = rng.uniform(0.05, 0.3, 50)
    pos = rng.uniform(0.7, 0.95, 50)
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    p = np.r_[neg, pos]
    t = choose_threshold(y, p, criterion)
    assert neg.max() < t <= pos.min()
    assert t == pytest.approx((neg.max() + pos.min()) / 2)


def test_choose_threshold_finds_shifted_cut_and_accepts_two_columns() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.2, 0.3])
    assert choose_threshold(y, p) == pytest.approx(0.065)
    assert choose_threshold(y, np.stack([1 - p, p], axis=1)) == pytest.approx(0.065)


def test_choose_threshold_f1_differs_from_youden() -> None:
    # Youden takes all 4 positives at 6 false positives out of 102 negatives (J = 0.94);
    # F1 prefers the 2 sure positives with no false positive (F1 0.67 against 0.57).
    y = np.array([0] * 96 + [1] * 2 + [0] * 6 + [1] * 2)
    p = np.array([0.1] * 96 + [0.3] * 2 + [0.4] * 6 + [0.9] * 2)
    assert choose_threshold(y, p, "youden") == pytest.approx(0.2)
    assert choose_threshold(y, p, "balanced_accuracy") == pytest.approx(0.2)
    assert choose_threshold(y, p, "f1") == pytest.approx(0.65)


def test_choose_threshold_errors() -> None:
    with pytest.raises(EvaluationError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.9])
    with pytest.raises(EvaluationError, match="criterion"):
        choose_threshold([0, 1], [0.2, 0.9], "accuracy")
