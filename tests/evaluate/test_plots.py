"""Tests of medlabel.evaluate.plots: PNG output, curve data, no pyplot state."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from medlabel.evaluate import (
    EvaluationError,
    plot_confusion_matrix,
    plot_pr,
    plot_reliability,
    plot_roc,
    pr_curves,
    roc_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(n: int = 120, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2 * np.eye(k)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(png)) as picture:
        return picture.size


def test_curve_data_match_sklearn() -> None:
    y, probs = _data()
    rocs = roc_curves(y, probs, ["a", "b", "c"])
    prs = pr_curves(y, probs, ["a", "b", "c"])
    assert [c.name for c in rocs] == ["a", "b", "c"]
    for j, (roc, pr) in enumerate(zip(rocs, prs, strict=True)):
        assert roc.area == pytest.approx(roc_auc_score(y == j, probs[:, j]))
        assert pr.area == pytest.approx(average_precision_score(y == j, probs[:, j]))
        assert roc.prevalence == pytest.approx(np.mean(y == j))


def test_binary_curves_show_positive_class_only() -> None:
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    rocs = roc_curves(y, p, ["neg", "pos"])
    assert [c.name for c in rocs] == ["pos"]


def test_plots_are_png_and_leave_pyplot_alone() -> None:
    y, probs = _data()
    names = ["<b>", "cyst $x", "c"]
    cm = np.bincount(y * 3 + probs.argmax(axis=1), minlength=9).reshape(3, 3)
    pictures = [
        plot_confusion_matrix(cm, names, normalized=False),
        plot_confusion_matrix(cm, names, normalized=True),
        plot_roc(y, probs, names),
        plot_pr(y, probs, names),
        plot_reliability(y, probs),
    ]
    for png in pictures:
        width, height = _size(png)
        assert width > 200 and height > 200
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_multilabel_plots_and_missing_label() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((80, 4)) < 0.4).astype(int)
    y[:, 3] = 0  # a label with no positive case is skipped, not fatal
    probs = rng.random((80, 4))
    assert [c.name for c in roc_curves(y, probs, list("abcd"))] == ["a", "b", "c"]
    stacked = np.stack([[[10, 2], [3, 5]]] * 4)
    for png in (
        plot_roc(y, probs, list("abcd")),
        plot_pr(y, probs, list("abcd")),
        plot_reliability(y, probs),
        plot_confusion_matrix(stacked, list("abcd"), normalized=True),
    ):
        _size(png)


def test_confusion_matrix_validation() -> None:
    with pytest.raises(EvaluationError, match="shape"):
        plot_confusion_matrix([[1, 2, 3]], ["a"], normalized=False)
    with pytest.raises(EvaluationError, match="names"):
        plot_confusion_matrix([[1, 2], [3, 4]], ["a"], normalized=False)
    with pytest.raises(EvaluationError, match="non-negative"):
        plot_confusion_matrix([[1, -2], [3, 4]], ["a", "b"], normalized=False)
