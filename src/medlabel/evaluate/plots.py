"""Evaluation figures as PNG bytes: confusion matrices, ROC and PR curves, reliability diagrams.

Figures are drawn with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: no window opens, no global backend or figure registry is touched, and nothing leaks
between calls. The curve data behind the plots (:func:`roc_curves`, :func:`pr_curves`) are
public too, since ``metrics.json`` keeps only summary numbers.

For a binary task the ROC and PR plots show the positive class (column 1) only; the negative
class's ROC curve is the same curve. Multiclass and multilabel plots draw one-vs-rest curves,
one per class or label, skipping those without both positive and negative cases.

Example:
    >>> import numpy as np
    >>> png = plot_confusion_matrix([[5, 1], [2, 7]], ["normal", "tumour"], normalized=True)
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from medlabel.evaluate._checks import Checked, Task, check_inputs
from medlabel.evaluate.calibration import _bin_stats, _top_label_pairs, checked_ece
from medlabel.evaluate.errors import EvaluationError

__all__ = [
    "Curve",
    "plot_confusion_matrix",
    "plot_pr",
    "plot_reliability",
    "plot_roc",
    "pr_curves",
    "roc_curves",
]

_DPI = 100


@dataclass(frozen=True)
class Curve:
    """One class's curve.

    Attributes:
        name: class or label name.
        x: false-positive rate (ROC) or recall (PR).
        y: true-positive rate (ROC) or precision (PR).
        area: ROC AUC, or average precision for PR.
        prevalence: fraction of positive cases (the PR curve of a random classifier).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    area: float
    prevalence: float


def _text(value: str) -> str:
    """Matplotlib-safe text: a ``$`` in a class name must not start mathtext."""
    return str(value).replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _one_vs_rest(checked: Checked) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, 0/1 truth, score) per plotted class; binary: the positive class only."""
    names, y, probs = checked.class_names, checked.y, checked.probs
    if checked.task == "binary":
        return [(names[1], (y == 1).astype(np.int64), probs[:, 1])]
    if checked.task == "multilabel":
        return [(names[j], y[:, j], probs[:, j]) for j in range(len(names))]
    return [(names[j], (y == j).astype(np.int64), probs[:, j]) for j in range(len(names))]


def _curves(checked: Checked, kind: str) -> tuple[list[Curve], list[str]]:
    curves, skipped = [], []
    for name, truth, score in _one_vs_rest(checked):
        if truth.min() == truth.max():
            skipped.append(name)
            continue
        prevalence = float(truth.mean())
        if kind == "roc":
            fpr, tpr, _ = roc_curve(truth, score)
            area = float(np.trapezoid(tpr, fpr))
            curves.append(Curve(name, fpr, tpr, area, prevalence))
        else:
            precision, recall, _ = precision_recall_curve(truth, score)
            area = float(average_precision_score(truth, score))
            curves.append(Curve(name, recall, precision, area, prevalence))
    return curves, skipped


def roc_curves(
    y_true: object,
    probs: object,
    class_names: Sequence[str] | None = None,
    *,
    task: Task | None = None,
) -> list[Curve]:
    """One-vs-rest ROC curves, one per class with both positive and negative cases.

    Args:
        y_true: ``(N,)`` class indices or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities (binary: column 1 is the positive class).
        class_names: ``K`` names, or ``None`` for ``"0"``, ``"1"``, ...
        task: the task, or ``None`` to infer it as
            :func:`~medlabel.evaluate.metrics.classification_metrics` does.

    Returns:
        The curves; ``area`` is the ROC AUC.

    Raises:
        EvaluationError: on invalid input.

    Example:
        >>> [c.area for c in roc_curves([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])]
        [1.0]
    """
    return _curves(check_inputs(y_true, probs, class_names, task), "roc")[0]


def pr_curves(
    y_true: object,
    probs: object,
    class_names: Sequence[str] | None = None,
    *,
    task: Task | None = None,
) -> list[Curve]:
    """One-vs-rest precision-recall curves; ``area`` is the average precision.

    Args:
        y_true: ``(N,)`` class indices or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities (binary: column 1 is the positive class).
        class_names: ``K`` names, or ``None`` for ``"0"``, ``"1"``, ...
        task: the task, or ``None`` to infer it as
            :func:`~medlabel.evaluate.metrics.classification_metrics` does.

    Returns:
        The curves (``x`` = recall, ``y`` = precision).

    Raises:
        EvaluationError: on invalid input.

    Example:
        >>> [c.area for c in pr_curves([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])]
        [1.0]
    """
    return _curves(check_inputs(y_true, probs, class_names, task), "pr")[0]


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _curve_figure(checked: Checked, kind: str) -> bytes:
    curves, skipped = _curves(checked, kind)
    n = max(len(curves), 1)
    width = 6.0 if n <= 10 else 8.5
    fig = Figure(figsize=(width, 5.0), layout="constrained")
    ax = fig.add_subplot()
    for curve, colour in zip(curves, _colours(len(curves)), strict=True):
        label = f"{_text(curve.name)} ({'AUC' if kind == 'roc' else 'AP'} {curve.area:.3f})"
        style = "steps-post" if kind == "pr" else "default"
        ax.plot(curve.x, curve.y, color=colour, lw=1.5, label=label, drawstyle=style)
        if kind == "pr" and len(curves) == 1:
            ax.axhline(curve.prevalence, color="grey", ls="--", lw=1, label="chance")
    if kind == "roc":
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
        ax.set(xlabel="False-positive rate (1 - specificity)", ylabel="True-positive rate")
        ax.set_title("ROC curves (one-vs-rest)" if len(curves) > 1 else "ROC curve")
    else:
        ax.set(xlabel="Recall (sensitivity)", ylabel="Precision")
        ax.set_title("Precision-recall curves" if len(curves) > 1 else "Precision-recall curve")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.02), aspect="equal")
    ax.grid(alpha=0.3)
    if skipped:
        ax.text(
            0.5,
            0.02,
            "not drawn (no positive or no negative case): " + ", ".join(_text(s) for s in skipped),
            transform=ax.transAxes,
            ha="center",
            fontsize=8,
            wrap=True,
        )
    if curves:
        outside = len(curves) > 6
        ax.legend(
            fontsize=8 if len(curves) <= 10 else 7,
            loc="center left" if outside else ("lower right" if kind == "roc" else "lower left"),
            bbox_to_anchor=(1.02, 0.5) if outside else None,
        )
    return _png(fig)


def plot_roc(
    y_true: object,
    probs: object,
    class_names: Sequence[str] | None = None,
    *,
    task: Task | None = None,
) -> bytes:
    """ROC curves, one per class (binary: the positive class), with the AUC in the legend.

    Args:
        y_true: ``(N,)`` class indices or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities.
        class_names: ``K`` names, or ``None`` for ``"0"``, ``"1"``, ...
        task: the task, or ``None`` to infer it as
            :func:`~medlabel.evaluate.metrics.classification_metrics` does.

    Returns:
        PNG bytes.

    Raises:
        EvaluationError: on invalid input.

    Example:
        >>> plot_roc([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])[:4]
        b'\\x89PNG'
    """
    return _curve_figure(check_inputs(y_true, probs, class_names, task), "roc")


def plot_pr(
    y_true: object,
    probs: object,
    class_names: Sequence[str] | None = None,
    *,
    task: Task | None = None,
) -> bytes:
    """Precision-recall curves, one per class, with the average precision in the legend.

    Args:
        y_true: ``(N,)`` class indices or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities.
        class_names: ``K`` names, or ``None`` for ``"0"``, ``"1"``, ...
        task: the task, or ``None`` to infer it as
            :func:`~medlabel.evaluate.metrics.classification_metrics` does.

    Returns:
        PNG bytes.

    Raises:
        EvaluationError: on invalid input.

    Example:
        >>> plot_pr([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])[:4]
        b'\\x89PNG'
    """
    return _curve_figure(check_inputs(y_true, probs, class_names, task), "pr")


def _heatmap(ax: Axes, cm: np.ndarray, names: Sequence[str], normalized: bool) -> None:
    k = cm.shape[0]
    vmax = 1.0 if normalized else max(float(cm.max()), 1.0)
    ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=vmax)
    ticks = np.arange(k)
    labels = [_text(n) for n in names]
    ax.set_xticks(ticks, labels, rotation=45 if k > 2 else 0, ha="right" if k > 2 else "center")
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="Predicted", ylabel="True")
    if k <= 30:
        size = 10 if k <= 8 else (8 if k <= 15 else 6)
        for (i, j), value in np.ndenumerate(cm):
            text = f"{value:.2f}" if normalized else f"{int(value)}"
            colour = "white" if value > vmax / 2 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=size)


def plot_confusion_matrix(cm: object, class_names: Sequence[str], normalized: bool) -> bytes:
    """A confusion matrix as an annotated heat map (rows = true, columns = predicted).

    Args:
        cm: ``(K, K)`` counts, or ``(K, 2, 2)`` per-label ``[[tn, fp], [fn, tp]]`` matrices of a
            multilabel task (drawn as small multiples). A row-normalised matrix works too.
        class_names: ``K`` names.
        normalized: show each row divided by its sum (fractions of the true class) instead of
            counts. Normalising is idempotent, so counts or an already normalised matrix give
            the same picture.

    Returns:
        PNG bytes.

    Raises:
        EvaluationError: on a malformed matrix or a wrong number of names.

    Example:
        >>> plot_confusion_matrix([[3, 0], [1, 4]], ["no", "yes"], normalized=False)[:4]
        b'\\x89PNG'
    """
    try:
        matrix = np.asarray(cm, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(None, f"confusion matrix is not numeric: {exc}") from exc
    k = matrix.shape[0] if matrix.ndim else 0
    square = matrix.ndim == 2 and matrix.shape == (k, k)
    stacked = matrix.ndim == 3 and matrix.shape[1:] == (2, 2)
    if k == 0 or not (square or stacked):
        raise EvaluationError(
            None, f"confusion matrix must be (K, K) or (K, 2, 2); got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all() or matrix.min() < 0:
        raise EvaluationError(None, "confusion matrix must hold finite, non-negative values")
    names = list(class_names)
    if len(names) != k:
        raise EvaluationError(None, f"got {len(names)} class names for a {k}-class matrix")
    if normalized:
        rows = matrix.sum(axis=-1, keepdims=True)
        matrix = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    title = "Confusion matrix" + (" (row-normalised)" if normalized else " (counts)")
    if square:
        side = min(3.5 + 0.45 * k, 16.0)
        fig = Figure(figsize=(side, side * 0.92), layout="constrained")
        _heatmap(fig.add_subplot(), matrix, names, normalized)
        fig.suptitle(title)
        return _png(fig)
    cols = min(k, 5)
    rows_n = -(-k // cols)
    fig = Figure(figsize=(2.6 * cols, 2.6 * rows_n + 0.5), layout="constrained")
    for j, name in enumerate(names):
        ax = fig.add_subplot(rows_n, cols, j + 1)
        _heatmap(ax, matrix[j], ["neg", "pos"], normalized)
        ax.set_title(_text(name), fontsize=9)
    fig.suptitle(title + ", per label")
    return _png(fig)


def plot_reliability(
    y_true: object, probs: object, n_bins: int = 15, *, task: Task | None = None
) -> bytes:
    """Reliability diagram of the top-label confidence, with bin counts below.

    Bars show the accuracy in each confidence bin against the diagonal of perfect
    calibration; the title gives the ECE as in ``metrics.json``. A multilabel diagram pools
    all (case, label) pairs, while its title gives the mean ECE over labels.

    Args:
        y_true: ``(N,)`` class indices or ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities.
        n_bins: number of equal-width confidence bins.
        task: the task, or ``None`` to infer it.

    Returns:
        PNG bytes.

    Raises:
        EvaluationError: on invalid input.

    Example:
        >>> plot_reliability([0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])[:4]
        b'\\x89PNG'
    """
    checked = check_inputs(y_true, probs, task=task)
    pairs = _top_label_pairs(checked)
    confidence = np.concatenate([c for c, _ in pairs])
    correct = np.concatenate([ok for _, ok in pairs])
    conf, acc, count = _bin_stats(confidence, correct, n_bins)
    ece = checked_ece(checked, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1.0 / n_bins
    filled = count > 0

    fig = Figure(figsize=(5.5, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.bar(
        centres[filled],
        acc[filled],
        width=width,
        color="#4c72b0",
        edgecolor="black",
        lw=0.6,
        label="accuracy",
    )
    gap_low = np.minimum(acc[filled], conf[filled])
    top.bar(
        centres[filled],
        np.abs(acc[filled] - conf[filled]),
        bottom=gap_low,
        width=width,
        color="#dd8452",
        alpha=0.45,
        edgecolor="#c44e52",
        hatch="//",
        lw=0.6,
        label="gap",
    )
    top.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    top.set(ylabel="Accuracy", xlim=(0, 1), ylim=(0, 1))
    what = "mean ECE over labels" if checked.task == "multilabel" else "ECE"
    top.set_title(f"Reliability diagram ({what} = {ece:.3f}, {n_bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(centres, count, width=width, color="#8c8c8c", edgecolor="black", lw=0.6)
    if n_bins <= 20:
        for x, c in zip(centres[filled], count[filled], strict=True):
            bottom.text(x, c, str(int(c)), ha="center", va="bottom", fontsize=7)
    bottom.set(xlabel="Confidence (probability of the predicted class)", ylabel="Cases")
    bottom.set_ylim(0, max(int(count.max()), 1) * 1.25)
    return _png(fig)
