"""Tests of medlabel.evaluate.metrics: hand-computed values, sklearn agreement, MedMNIST, CIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from medlabel.evaluate import EvaluationError, classification_metrics

# Six binary cases: y = 0,0,0,1,1,1 with positive-class probabilities below.
# Threshold 0.5 (p >= 0.5 is positive) gives decisions 0,0,1,0,1,1:
# TN = 2, FP = 1 (the 0.5), FN = 1 (the 0.35), TP = 2.
Y6 = np.array([0, 0, 0, 1, 1, 1])
P6 = np.array([0.1, 0.42, 0.5, 0.35, 0.8, 0.9])
PROBS6 = np.stack([1 - P6, P6], axis=1)

TOP_KEYS = {
    "accuracy",
    "balanced_accuracy",
    "auc",
    "f1_macro",
    "ece",
    "confusion_matrix",
    "confusion_matrix_normalized",
    "n",
    "task",
    "threshold",
    "per_class",
    "medmnist",
    "ci",
}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multiclass(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(size=(n, k)) * 2)
    cumulative = probs.cumsum(axis=1)
    y = (rng.random((n, 1)) > cumulative).sum(axis=1)
    return np.minimum(y, k - 1), probs


def test_binary_six_cases_by_hand() -> None:
    m = classification_metrics(Y6, PROBS6, ["neg", "pos"], n_bootstrap=0)
    assert set(m) >= TOP_KEYS
    assert (m["task"], m["n"], m["threshold"]) == ("binary", 6, 0.5)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    # AUC by pairs: 0.35 beats 0.1 only (1), 0.8 and 0.9 beat all three negatives (3 + 3).
    assert m["auc"] == pytest.approx(7 / 9)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]
    normalized = np.array(m["confusion_matrix_normalized"])
    assert np.allclose(normalized, [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    pos = m["per_class"]["pos"]
    assert pos["recall"] == pytest.approx(2 / 3)  # sensitivity TP / (TP + FN)
    assert pos["specificity"] == pytest.approx(2 / 3)  # TN / (TN + FP)
    assert pos["precision"] == pytest.approx(2 / 3)
    assert pos["f1"] == pytest.approx(2 / 3)
    assert pos["support"] == 3 and pos["auc"] == pytest.approx(7 / 9)
    assert m["f1_macro"] == pytest.approx(2 / 3)
    # Top-label ECE: confidences .9 .58 .5 | .65 .8 .9, only the 0.35 positive is wrong.
    # Bins: {.9, .9} acc 1 conf .9; .58 ok; .5 ok; .65 wrong; .8 ok.
    expected_ece = (2 * 0.1 + 0.42 + 0.5 + 0.65 + 0.2) / 6
    assert m["ece"] == pytest.approx(expected_ece)
    # MedMNIST: ACC uses score > 0.5 strictly, so the 0.5 negative counts as correct.
    assert m["medmnist"]["acc"] == pytest.approx(5 / 6)
    assert m["medmnist"]["auc"] == pytest.approx(7 / 9)
    assert m["notes"] == []
    json.dumps(m, allow_nan=False)  # JSON-ready


def test_binary_threshold_changes_decisions_not_auc() -> None:
    m = classification_metrics(Y6, PROBS6, ["neg", "pos"], threshold=0.3, n_bootstrap=0)
    # p >= 0.3: decisions 0,1,1,1,1,1 -> TN 1, FP 2, TP 3.
    assert m["threshold"] == 0.3
    assert m["confusion_matrix"] == [[1, 2], [0, 3]]
    assert m["per_class"]["pos"]["specificity"] == pytest.approx(1 / 3)
    assert m["auc"] == pytest.approx(7 / 9)
    assert m["medmnist"]["acc"] == pytest.approx(5 / 6)  # the protocol ignores the threshold


def test_binary_accepts_one_dimensional_scores_and_column_labels() -> None:
    a = classification_metrics(Y6, PROBS6, ["neg", "pos"], n_bootstrap=0)
    b = classification_metrics(Y6[:, None], P6, ["neg", "pos"], n_bootstrap=0)
    assert a == b


def test_multiclass_matches_sklearn() -> None:
    y, probs = _multiclass(600, 4, seed=1)
    m = classification_metrics(y, probs, list("abcd"), n_bootstrap=0)
    pred = probs.argmax(axis=1)
    assert m["task"] == "multiclass" and m["threshold"] is None
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    precision = precision_score(y, pred, average=None)
    recall = recall_score(y, pred, average=None)
    for j, name in enumerate("abcd"):
        row = m["per_class"][name]
        assert row["precision"] == pytest.approx(precision[j])
        assert row["recall"] == pytest.approx(recall[j])
        assert row["auc"] == pytest.approx(roc_auc_score(y == j, probs[:, j]))
        negatives = y != j
        assert row["specificity"] == pytest.approx(np.mean(pred[negatives] != j))
        assert row["support"] == int(np.sum(y == j))
    assert np.array(m["confusion_matrix"]).sum() == 600
    assert np.allclose(np.array(m["confusion_matrix_normalized"]).sum(axis=1), 1)


def test_medmnist_multiclass_auc_is_unweighted_mean_of_one_vs_rest() -> None:
    # Imbalanced classes make the unweighted mean differ from sklearn's weighted average.
    y, probs = _multiclass(500, 3, seed=2)
    y[:300] = 0
    m = classification_metrics(y, probs, ["x", "y", "z"], n_bootstrap=0)
    ovr = [roc_auc_score((y == j).astype(int), probs[:, j]) for j in range(3)]
    assert m["medmnist"]["auc"] == pytest.approx(np.mean(ovr))
    weighted = roc_auc_score(y, probs, multi_class="ovr", average="weighted")
    assert abs(m["medmnist"]["auc"] - weighted) > 1e-4
    assert m["medmnist"]["acc"] == pytest.approx(np.mean(probs.argmax(axis=1) == y))


def test_ordinal_is_scored_like_multiclass() -> None:
    y, probs = _multiclass(200, 5, seed=3)
    ordinal = classification_metrics(y, probs, list("01234"), task="ordinal", n_bootstrap=0)
    multi = classification_metrics(y, probs, list("01234"), n_bootstrap=0)
    assert ordinal["task"] == "ordinal"
    assert ordinal["medmnist"] == multi["medmnist"]
    assert ordinal["auc"] == multi["auc"] and ordinal["accuracy"] == multi["accuracy"]


def test_multilabel_definitions() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random((300, 3)) < [0.2, 0.5, 0.7]).astype(int)
    probs = np.clip(0.35 * y + 0.65 * rng.random((300, 3)), 0, 1)
    m = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=0)
    assert m["task"] == "multilabel" and m["threshold"] == 0.5
    pred = probs >= 0.5
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    aucs = [roc_auc_score(y[:, j], probs[:, j]) for j in range(3)]
    assert m["auc"] == pytest.approx(np.mean(aucs))
    assert m["medmnist"]["auc"] == pytest.approx(np.mean(aucs))
    medmnist_acc = np.mean([np.mean((probs[:, j] > 0.5) == y[:, j]) for j in range(3)])
    assert m["medmnist"]["acc"] == pytest.approx(medmnist_acc)
    cm_a = np.array(m["confusion_matrix"][0])
    assert cm_a.shape == (2, 2)
    assert cm_a[1, 1] == np.sum(pred[:, 0] & (y[:, 0] == 1))  # tp
    assert m["per_class"]["c"]["support"] == int(y[:, 2].sum())


def test_single_class_present_gives_null_auc_with_note() -> None:
    y = np.zeros(5, dtype=int)
    p = np.array([0.1, 0.2, 0.7, 0.3, 0.4])
    m = classification_metrics(y, p, ["neg", "pos"], n_bootstrap=100)
    assert m["auc"] is None and m["medmnist"]["auc"] is None
    assert m["ci"]["auc"] is None
    assert m["ci"]["accuracy"] is not None
    assert any("auc is null" in note for note in m["notes"])
    assert m["per_class"]["pos"]["recall"] is None  # no positive case
    assert m["accuracy"] == pytest.approx(0.8)


def test_missing_class_is_left_out_of_macro_auc() -> None:
    y, probs = _multiclass(200, 3, seed=5)
    y[y == 2] = 0
    m = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=20)
    expected = np.mean([roc_auc_score(y == j, probs[:, j]) for j in (0, 1)])
    assert m["auc"] == pytest.approx(expected)
    assert m["per_class"]["c"]["auc"] is None
    assert m["medmnist"]["auc"] is None
    assert any("left out" in note and "c" in note for note in m["notes"])


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_data() -> None:
    def widths(n: int) -> dict[str, float]:
        y, probs = _multiclass(n, 3, seed=n)
        m = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=300, seed=0)
        for name in ("accuracy", "balanced_accuracy", "auc", "f1_macro"):
            low, high = m["ci"][name]
            assert low <= m[name] <= high, name
        return {name: high - low for name, (low, high) in m["ci"].items()}

    small, large = widths(80), widths(2000)
    for name in small:
        assert large[name] < small[name] / 2, name


def test_bootstrap_is_reproducible_and_seeded() -> None:
    y, probs = _multiclass(150, 3, seed=6)
    a = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=200, seed=3)
    b = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=200, seed=3)
    c = classification_metrics(y, probs, ["a", "b", "c"], n_bootstrap=200, seed=4)
    assert a["ci"] == b["ci"] and a["ci"] != c["ci"]


def test_stratified_bootstrap_never_skips_with_rare_class() -> None:
    y = np.array([0] * 48 + [1] * 2)
    p = np.linspace(0.05, 0.95, 50)
    m = classification_metrics(y, p, ["neg", "pos"], n_bootstrap=200)
    assert m["ci"]["auc"] is not None
    assert not any("skipped" in note for note in m["notes"])


@pytest.mark.parametrize(
    ("y", "probs", "names", "kwargs", "message"),
    [
        ([0, 1, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {}, "3 cases"),
        ([0, 1], [[1.2, -0.2], [0.2, 0.8]], ["a", "b"], {}, r"\[0, 1\]"),
        ([0, 1], [[0.6, 0.6], [0.2, 0.8]], ["a", "b"], {}, "sum to 1"),
        ([0, 2], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {}, "outside 0..1"),
        ([0, 1], [[np.nan, 0.5], [0.2, 0.8]], ["a", "b"], {}, "NaN"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a"], {}, "class names"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "a"], {}, "unique"),
        ([0.5, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {}, "whole-number"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {"task": "other"}, "unknown task"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {"threshold": 1.5}, "threshold"),
        ([0, 1], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {"n_bootstrap": -1}, "n_bootstrap"),
        (
            [0, 1],
            [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]],
            ["a", "b", "c"],
            {"task": "binary"},
            "2 probability columns",
        ),
        (
            [0, 1],
            [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]],
            ["a", "b", "c"],
            {"threshold": 0.4},
            "binary and multilabel",
        ),
        ([[0, 2], [1, 1]], [[0.5, 0.5], [0.2, 0.8]], ["a", "b"], {}, "only 0 and 1"),
        ([], np.zeros((0, 2)), ["a", "b"], {}, "no cases"),
    ],
)
def test_bad_input_raises_evaluation_error(
    y: object, probs: object, names: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        classification_metrics(y, probs, names, **kwargs)


def test_row_sum_tolerance_and_multilabel_rows_free() -> None:
    ok = classification_metrics([0, 1], [[0.5004, 0.5], [0.2, 0.8]], ["a", "b"], n_bootstrap=0)
    assert ok["n"] == 2
    multilabel = classification_metrics(
        [[0, 1], [1, 1]], [[0.9, 0.9], [0.8, 0.7]], ["a", "b"], n_bootstrap=0
    )
    assert multilabel["task"] == "multilabel"


def test_auc_with_tied_scores_matches_sklearn() -> None:
    y, probs = _multiclass(300, 3, seed=7)
    coarse = np.round(probs, 1)
    coarse[:, 2] = 1 - coarse[:, 0] - coarse[:, 1]  # keep rows summing to 1
    coarse = np.clip(coarse, 0, 1)
    coarse /= coarse.sum(axis=1, keepdims=True)
    m = classification_metrics(y, coarse, list("abc"), n_bootstrap=0)
    for j, name in enumerate("abc"):
        assert m["per_class"][name]["auc"] == pytest.approx(roc_auc_score(y == j, coarse[:, j]))


@pytest.mark.parametrize("multilabel", [False, True])
def test_bootstrap_weights_equal_explicit_resample(multilabel: bool) -> None:
    from medlabel.evaluate._checks import check_inputs
    from medlabel.evaluate.metrics import _Scorer, decisions

    rng = np.random.default_rng(8)
    if multilabel:
        y = (rng.random((90, 3)) < 0.4).astype(int)
        probs = np.round(rng.random((90, 3)), 2)
    else:
        y, probs = _multiclass(90, 4, seed=8)
    idx = rng.integers(0, 90, 90)
    checked = check_inputs(y, probs)
    weighted = _Scorer(checked, decisions(checked, 0.5)).summary(
        np.bincount(idx, minlength=90).astype(float), range(checked.n_classes)
    )
    explicit = classification_metrics(
        y[idx], probs[idx], list("abcd")[: probs.shape[1]], n_bootstrap=0
    )
    for name, value in weighted.items():
        assert value == pytest.approx(explicit[name]), name
