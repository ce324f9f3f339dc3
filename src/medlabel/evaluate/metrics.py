"""Classification metrics with bootstrap confidence intervals, and the MedMNIST v2 protocol.

:func:`classification_metrics` turns labels and predicted probabilities into one JSON-ready
dictionary (the content of ``metrics.json``). Decisions follow the task: a threshold on the
positive-class probability (binary), the most probable class (multiclass, ordinal), or a
threshold per label (multilabel).

Undefined values are ``None`` (JSON ``null``), never a crash and never a made-up number: the
AUC when ``y_true`` holds a single class, a precision when a class is never predicted, a
specificity when every case belongs to the class. Each ``None`` that hides a headline number
is explained in ``notes``.

Example:
    >>> import numpy as np
    >>> y = [0, 0, 1, 1]
    >>> p = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    >>> m = classification_metrics(y, p, ["benign", "malignant"], n_bootstrap=0)
    >>> m["task"], m["accuracy"], m["auc"], m["per_class"]["malignant"]["specificity"]
    ('binary', 0.75, 1.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score

from medlabel.evaluate._checks import Checked, Task, check_inputs
from medlabel.evaluate.calibration import checked_ece
from medlabel.evaluate.errors import EvaluationError

__all__ = ["CI_METRICS", "classification_metrics", "decisions", "medmnist_scores"]

#: Metrics that get a bootstrap confidence interval under ``ci``.
CI_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "auc", "f1_macro")

#: Coverage of the percentile bootstrap intervals.
CI_LEVEL = 0.95
_ECE_BINS = 15


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def decisions(checked: Checked, threshold: float | None) -> np.ndarray:
    """Predicted classes: ``(N,)`` indices, or ``(N, K)`` 0/1 for multilabel.

    Args:
        checked: validated inputs from :func:`~medlabel.evaluate._checks.check_inputs`.
        threshold: cut on the positive-class probability (binary) or on each label's
            probability (multilabel), predicting positive when ``p >= threshold``; unused for
            multiclass and ordinal tasks (argmax).

    Returns:
        The decisions as int64.

    Example:
        >>> from medlabel.evaluate._checks import check_inputs
        >>> decisions(check_inputs([0, 1], [[0.6, 0.4], [0.5, 0.5]]), 0.5).tolist()
        [0, 1]
    """
    probs = checked.probs
    if checked.task == "binary":
        return (probs[:, 1] >= (0.5 if threshold is None else threshold)).astype(np.int64)
    if checked.task == "multilabel":
        return (probs >= (0.5 if threshold is None else threshold)).astype(np.int64)
    return np.argmax(probs, axis=1).astype(np.int64)


class _Scorer:
    """Confusion counts, accuracy, balanced accuracy, macro F1 and AUC under case weights.

    A bootstrap resample is a vector of case multiplicities, so the point estimate (all
    weights 1) and every resample go through the same code. Scores are grouped into tie groups
    once per column, which makes each weighted AUC a pair of ``bincount`` calls.
    """

    def __init__(self, checked: Checked, predicted: np.ndarray) -> None:
        self.checked = checked
        n, k = checked.n, checked.n_classes
        if checked.single_label:
            self.codes = checked.y * k + predicted
            positives = checked.y[:, None] == np.arange(k)[None, :]
        else:
            positives = checked.y.astype(bool)
            hit = predicted.astype(bool)
            cells = [positives & hit, ~positives & hit, positives & ~hit, ~positives & ~hit]
            self.cells = np.concatenate(cells, axis=1).astype(np.float64)  # (N, 4K)
        # Column-major (K, N) so that each column's groups are visited together (cache).
        self.positives = np.ascontiguousarray(positives.T, dtype=np.float64)
        self.negatives = 1.0 - self.positives
        # Tie groups of every column, numbered consecutively across columns in score order.
        groups: list[np.ndarray] = []
        sizes: list[int] = []
        for j in range(k):
            inverse = np.unique(checked.probs[:, j], return_inverse=True)[1].reshape(n)
            groups.append(inverse + sum(sizes))
            sizes.append(int(inverse.max()) + 1)
        self.flat_groups = np.concatenate(groups)
        self.starts = np.cumsum([0, *sizes[:-1]])
        self.n_groups = int(sum(sizes))
        self.column_of_group = np.repeat(np.arange(k), sizes)

    def counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Weighted ``(tp, fp, fn, tn)`` per class (one-vs-rest) or per label."""
        k = self.checked.n_classes
        if self.checked.single_label:
            cm = np.bincount(self.codes, weights=w, minlength=k * k).reshape(k, k)
            tp: np.ndarray = np.diag(cm)
            fn = cm.sum(axis=1) - tp
            fp = cm.sum(axis=0) - tp
            return tp, fp, fn, w.sum() - tp - fn - fp
        cells = np.asarray(w @ self.cells, dtype=np.float64).reshape(4, k)
        return cells[0], cells[1], cells[2], cells[3]

    def aucs(self, w: np.ndarray) -> np.ndarray:
        """Weighted one-vs-rest ROC AUC of every column (ties count half); NaN if undefined.

        AUC = P(score of a positive > score of a negative) + P(tie) / 2, summed over tie
        groups: each positive group meets the negatives below it and half of those level.
        """
        weights = w[None, :]
        pos = np.bincount(
            self.flat_groups, (weights * self.positives).ravel(), minlength=self.n_groups
        )
        neg = np.bincount(
            self.flat_groups, (weights * self.negatives).ravel(), minlength=self.n_groups
        )
        running = np.cumsum(neg)
        before_column = np.concatenate([[0.0], running])[self.starts]
        below = running - neg - before_column[self.column_of_group]
        pairs = np.add.reduceat(pos * (below + 0.5 * neg), self.starts)
        n_pos = np.add.reduceat(pos, self.starts)
        n_neg = np.add.reduceat(neg, self.starts)
        defined = (n_pos > 0) & (n_neg > 0)
        return np.where(defined, pairs / np.where(defined, n_pos * n_neg, 1.0), np.nan)

    def summary(self, w: np.ndarray, auc_columns: Sequence[int]) -> dict[str, float | None]:
        """The four interval metrics under weights ``w``; ``auc`` is None if any is undefined."""
        tp, fp, fn, tn = self.counts(w)
        total = float(w.sum())
        f1 = [_ratio(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn, strict=True)]
        if self.checked.single_label:
            accuracy = _ratio(tp.sum(), total)
            balanced = _mean([_ratio(a, a + c) for a, c in zip(tp, fn, strict=True)])
        else:
            accuracy = _mean([_ratio(a + d, total) for a, d in zip(tp, tn, strict=True)])
            balanced = _mean(
                [
                    (a / (a + c) + d / (d + b)) / 2 if a + c > 0 and d + b > 0 else None
                    for a, b, c, d in zip(tp, fp, fn, tn, strict=True)
                ]
            )
        auc = None
        if auc_columns:
            aucs = self.aucs(w)[list(auc_columns)]
            auc = None if np.isnan(aucs).any() else float(aucs.mean())
        return {
            "accuracy": accuracy,
            "balanced_accuracy": balanced,
            "auc": auc,
            "f1_macro": _mean(f1),
        }


def _bootstrap(
    scorer: _Scorer, auc_columns: Sequence[int], n_bootstrap: int, seed: int, notes: list[str]
) -> dict[str, list[float] | None]:
    checked = scorer.checked
    n = checked.n
    if n_bootstrap == 0:
        return dict.fromkeys(CI_METRICS)
    rng = np.random.default_rng(seed)
    if checked.single_label:
        members = (np.flatnonzero(checked.y == k) for k in range(checked.n_classes))
        strata = [idx for idx in members if len(idx)]
    else:
        strata = [np.arange(n)]
    draws: dict[str, list[float]] = {name: [] for name in CI_METRICS}
    skipped = 0
    for _ in range(n_bootstrap):
        idx = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in strata])
        summary = scorer.summary(np.bincount(idx, minlength=n).astype(np.float64), auc_columns)
        if auc_columns and summary["auc"] is None:
            skipped += 1
            continue
        for name, value in summary.items():
            if value is not None:
                draws[name].append(value)
    if skipped:
        notes.append(
            f"{skipped} of {n_bootstrap} bootstrap resamples were skipped because a class or "
            "label lost all its positive or negative cases (AUC undefined)"
        )
    tail = 100 * (1 - CI_LEVEL) / 2
    return {
        name: [float(v) for v in np.percentile(values, [tail, 100 - tail])] if values else None
        for name, values in draws.items()
    }


def medmnist_scores(checked: Checked) -> tuple[dict[str, float | None], str | None]:
    """ACC and AUC by the MedMNIST v2 evaluation protocol, comparable with its paper.

    * binary: AUC of the last column's score; ACC with ``score > 0.5`` (strictly greater);
    * multiclass and ordinal: AUC is the plain mean of the one-vs-rest AUCs of all classes;
      ACC is the argmax accuracy;
    * multilabel: AUC is the mean of the labels' AUCs; ACC is the mean over labels of each
      label's accuracy at ``score > 0.5``.

    The protocol is undefined (its reference code fails) when a class or label has no
    positive or no negative case; the AUC is then ``None`` with a reason.

    Args:
        checked: validated inputs.

    Returns:
        ``({"acc": ..., "auc": ...}, reason_or_None)``.

    Example:
        >>> from medlabel.evaluate._checks import check_inputs
        >>> scores, _ = medmnist_scores(check_inputs([0, 1, 1], [[0.5, 0.5], [0.2, 0.8], [1, 0]]))
        >>> round(scores["acc"], 4), scores["auc"]
        (0.6667, 0.5)
    """
    y, probs = checked.y, checked.probs
    k = probs.shape[1]
    if checked.task == "binary":
        score = probs[:, -1]
        acc = float(accuracy_score(y, score > 0.5))
        truth, scores = [y], [score]
    elif checked.task == "multilabel":
        acc = float(np.mean([accuracy_score(y[:, j], probs[:, j] > 0.5) for j in range(k)]))
        truth = [y[:, j] for j in range(k)]
        scores = [probs[:, j] for j in range(k)]
    else:
        acc = float(accuracy_score(y, np.argmax(probs, axis=-1)))
        truth = [(y == j).astype(np.int64) for j in range(k)]
        scores = [probs[:, j] for j in range(k)]
    if any(len(np.unique(t)) < 2 for t in truth):
        reason = (
            "medmnist.auc is null: the MedMNIST protocol averages the AUC of every class or "
            "label, and at least one has no positive or no negative case"
        )
        return {"acc": acc, "auc": None}, reason
    auc = float(np.mean([roc_auc_score(t, s) for t, s in zip(truth, scores, strict=True)]))
    return {"acc": acc, "auc": auc}, None


def _resolve_threshold(task: Task, threshold: float | None) -> float | None:
    if task in ("multiclass", "ordinal"):
        if threshold is not None:
            raise EvaluationError(
                None, f"threshold applies to binary and multilabel tasks only, not {task}"
            )
        return None
    if threshold is None:
        return 0.5
    number = isinstance(threshold, int | float | np.integer | np.floating)
    if not number or isinstance(threshold, bool) or not 0.0 <= float(threshold) <= 1.0:
        raise EvaluationError(None, f"threshold must be a number in [0, 1]; got {threshold!r}")
    return float(threshold)


def _per_class(
    scorer: _Scorer, counts: tuple[np.ndarray, ...], aucs: list[float | None]
) -> dict[str, dict[str, float | int | None]]:
    tp, fp, fn, tn = counts
    table = {}
    for j, name in enumerate(scorer.checked.class_names):
        table[name] = {
            "precision": _ratio(tp[j], tp[j] + fp[j]),
            "recall": _ratio(tp[j], tp[j] + fn[j]),
            "specificity": _ratio(tn[j], tn[j] + fp[j]),
            "f1": _ratio(2 * tp[j], 2 * tp[j] + fp[j] + fn[j]),
            "auc": aucs[j],
            "support": int(np.rint(tp[j] + fn[j])),
        }
    return table


def _confusion(scorer: _Scorer, counts: tuple[np.ndarray, ...]) -> tuple[list[Any], list[Any]]:
    checked = scorer.checked
    if checked.single_label:
        k = checked.n_classes
        cm = np.bincount(scorer.codes, minlength=k * k).reshape(k, k)
    else:
        tp, fp, fn, tn = counts
        cm = np.stack([np.stack([tn, fp], -1), np.stack([fn, tp], -1)], axis=1)
        cm = np.rint(cm).astype(np.int64)
    rows = cm.sum(axis=-1, keepdims=True)
    normalized = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    return cm.tolist(), normalized.tolist()


def classification_metrics(
    y_true: object,
    probs: object,
    class_names: Sequence[str],
    *,
    task: Task | None = None,
    threshold: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """All classification metrics of one evaluation, JSON-ready.

    Args:
        y_true: ``(N,)`` class indices (binary, multiclass, ordinal; ``(N, 1)`` is accepted) or
            ``(N, K)`` 0/1 indicators (multilabel).
        probs: ``(N, K)`` probabilities; for binary ``K = 2`` and column 1 is the positive
            class. Single-label rows must sum to 1 (tolerance 1e-3).
        class_names: ``K`` unique names, in column order.
        task: ``"binary"``, ``"multiclass"``, ``"multilabel"``, ``"ordinal"``, or ``None`` to
            infer (two classes: binary; 2-D ``y_true``: multilabel; else multiclass).
        threshold: decision threshold for binary (on column 1) and multilabel (per label)
            tasks, predicting positive when ``p >= threshold``; default 0.5. Choose it on
            validation data (:func:`~medlabel.evaluate.calibration.choose_threshold`). Must be
            ``None`` for multiclass and ordinal tasks, which use the argmax.
        n_bootstrap: bootstrap resamples for the 95% intervals; 0 skips them (``ci`` values
            are then ``None``).
        seed: seed of the resampling, so intervals are reproducible.

    Returns:
        A dict with these keys:

        * ``task``, ``n``, ``threshold`` (``None`` for argmax tasks), ``class_names``;
        * ``accuracy``: fraction of correct decisions (multilabel: mean over labels);
        * ``balanced_accuracy``: mean recall over classes present in ``y_true`` (multilabel:
          mean over labels of (sensitivity + specificity) / 2);
        * ``auc``: ROC AUC; binary: of column 1; multiclass and ordinal: unweighted mean of
          one-vs-rest AUCs; multilabel: mean over labels. Classes or labels whose AUC is
          undefined (no positive or no negative case) are left out of the mean and named in
          ``notes``; with none left, ``auc`` is ``None``;
        * ``f1_macro``: mean F1 over classes present among true or predicted labels;
        * ``ece``: expected calibration error of the top-label confidence, 15 bins (multilabel:
          mean of the labels' binary ECE). Independent of ``threshold``;
        * ``confusion_matrix`` (rows = true, columns = predicted; multilabel: one
          ``[[tn, fp], [fn, tp]]`` per label) and ``confusion_matrix_normalized`` (rows sum
          to 1; all-zero rows stay 0);
        * ``per_class``: ``{name: {precision, recall, specificity, f1, auc, support}}``,
          one-vs-rest, ``None`` where a ratio is 0/0;
        * ``medmnist``: ``{acc, auc}`` by :func:`medmnist_scores`;
        * ``ci``: ``{metric: [low, high]}`` 95% percentile bootstrap intervals of accuracy,
          balanced_accuracy, auc and f1_macro. Cases are resampled within each true class
          (stratified, so every class stays present; multilabel resamples cases plainly and
          skips resamples in which a label's AUC becomes undefined);
        * ``bootstrap``: ``{n_resamples, seed, level, stratified}``;
        * ``notes``: sentences explaining every ``None`` among the headline numbers.

    Raises:
        EvaluationError: on mismatched lengths, probabilities outside ``[0, 1]`` or rows not
            summing to 1, labels outside ``0..K-1``, NaN, bad names, task or threshold.

    Example:
        >>> m = classification_metrics([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 1]], ["a", "b", "c"],
        ...                            n_bootstrap=0)
        >>> m["accuracy"], m["confusion_matrix"]
        (0.75, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    """
    if not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise EvaluationError(None, f"n_bootstrap must be an integer >= 0; got {n_bootstrap!r}")
    checked = check_inputs(y_true, probs, class_names, task)
    cut = _resolve_threshold(checked.task, threshold)
    notes: list[str] = []
    scorer = _Scorer(checked, decisions(checked, cut))
    ones = np.ones(checked.n)
    aucs = [None if np.isnan(a) else float(a) for a in scorer.aucs(ones)]
    if checked.task == "binary":
        auc_columns = [1] if aucs[1] is not None else []
        if not auc_columns:
            notes.append("auc is null: y_true holds a single class, so ROC AUC is undefined")
    else:
        auc_columns = [j for j, a in enumerate(aucs) if a is not None]
        missing = [checked.class_names[j] for j, a in enumerate(aucs) if a is None]
        kind, kinds = ("label", "labels") if checked.task == "multilabel" else ("class", "classes")
        if not auc_columns:
            notes.append(f"auc is null: no {kind} has both positive and negative cases")
        elif missing:
            notes.append(
                f"auc averages {len(auc_columns)} of {checked.n_classes} {kinds}; left out "
                f"(no positive or no negative case): {', '.join(missing)}"
            )
    point = scorer.summary(ones, auc_columns)
    for name in ("balanced_accuracy", "f1_macro"):
        if point[name] is None:
            notes.append(f"{name} is null: no class has the cases it needs")
    counts = scorer.counts(ones)
    matrix, normalized = _confusion(scorer, counts)
    medmnist, reason = medmnist_scores(checked)
    if reason:
        notes.append(reason)
    ci = _bootstrap(scorer, auc_columns, int(n_bootstrap), seed, notes)
    return {
        "task": checked.task,
        "n": checked.n,
        "threshold": cut,
        "class_names": list(checked.class_names),
        **point,
        "ece": checked_ece(checked, n_bins=_ECE_BINS),
        "confusion_matrix": matrix,
        "confusion_matrix_normalized": normalized,
        "per_class": _per_class(scorer, counts, aucs),
        "medmnist": medmnist,
        "ci": ci,
        "bootstrap": {
            "n_resamples": int(n_bootstrap),
            "seed": seed,
            "level": CI_LEVEL,
            "stratified": checked.single_label,
        },
        "notes": notes,
    }
