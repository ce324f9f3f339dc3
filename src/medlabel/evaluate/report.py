"""The evaluation report: ``metrics.json`` and one self-contained ``report.html``.

The HTML page needs nothing but a browser: figures and thumbnails are embedded as base64 PNG
``<img>`` data URIs, styles are inline, and there are no scripts or external links. Every piece
of text from the caller (title, class names, ids, model information) is HTML-escaped.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.evaluate.metrics import classification_metrics
    >>> y, p = [0, 1, 1, 0], np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    >>> m = classification_metrics(y, p, ["normal", "pneumonia"], n_bootstrap=50)
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> page = write_classification_report(out, metrics=m, y_true=y, probs=p,
    ...     class_names=["normal", "pneumonia"], ids=["a", "b", "c", "d"], title="Demo")
    >>> page.name, sorted(f.name for f in out.iterdir())
    ('report.html', ['metrics.json', 'report.html'])
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medlabel.evaluate._checks import Checked, check_inputs
from medlabel.evaluate.errors import EvaluationError
from medlabel.evaluate.metrics import decisions
from medlabel.evaluate.plots import plot_confusion_matrix, plot_pr, plot_reliability, plot_roc
from medlabel.io.atomic import atomic_output

__all__ = ["REQUIRED_METRIC_KEYS", "THUMBNAIL_SIZE", "write_classification_report"]

logger = logging.getLogger(__name__)

#: Keys that ``metrics`` must hold (as written by ``classification_metrics``).
REQUIRED_METRIC_KEYS: tuple[str, ...] = (
    "task",
    "n",
    "threshold",
    "accuracy",
    "balanced_accuracy",
    "auc",
    "f1_macro",
    "ece",
    "confusion_matrix",
    "confusion_matrix_normalized",
    "per_class",
    "medmnist",
    "ci",
)

#: Longest side of an embedded thumbnail, in pixels (larger images are downscaled).
THUMBNAIL_SIZE = 128
_MIN_DISPLAY = 96

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
     margin-top: 2em; }
.meta { color: #555; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f2f2f2; } td.name, th.name { text-align: left; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.figures img { max-width: 100%; border: 1px solid #ddd; }
img.thumb { image-rendering: pixelated; }
.note { color: #7a4b00; } .small { font-size: 0.9em; color: #555; }
"""


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, NaN and infinity as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.{digits}f}" if math.isfinite(value) else "n/a"
    return str(value)


def page_head(title: str, meta: str) -> list[str]:
    """The opening lines of a report page: doctype, styles, title and a meta line."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
    ]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str, extra: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}"{extra}>'


def _thumbnail(array: object) -> tuple[bytes, int, int] | None:
    """PNG bytes and pixel size of a 2-D grey or RGB(A) array, at most THUMBNAIL_SIZE wide."""
    data = np.asarray(array)
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[-1] not in (3, 4)):
        logger.warning("thumbnail of shape %s is not a 2-D grey or RGB image", data.shape)
        return None
    if data.size == 0:
        return None
    if data.dtype != np.uint8:
        values = data.astype(np.float64)
        finite = np.isfinite(values)
        low, high = (values[finite].min(), values[finite].max()) if finite.any() else (0, 0)
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        data = np.round(np.nan_to_num(scaled, nan=0.0) * 255).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(data)
    picture.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), picture.width, picture.height


def _hardest(
    checked: Checked, predicted: np.ndarray, n_hardest: int
) -> list[tuple[int, str, str, float, str]]:
    """(index, true, predicted, probability on the truth, detail) of the highest-loss cases."""
    names, y, probs = checked.class_names, checked.y, checked.probs
    rows = []
    if checked.single_label:
        p_true = probs[np.arange(checked.n), y]
        for i in np.argsort(p_true, kind="stable")[:n_hardest]:
            detail = f"p({names[predicted[i]]}) = {probs[i, predicted[i]]:.3f}"
            rows.append((int(i), names[y[i]], names[predicted[i]], float(p_true[i]), detail))
        return rows
    # Multilabel: a case is as hard as its worst label (lowest probability on its true value).
    p_truth = np.where(y == 1, probs, 1.0 - probs)
    worst = np.argmin(p_truth, axis=1)
    p_true = p_truth[np.arange(checked.n), worst]

    def labels(row: np.ndarray) -> str:
        return ", ".join(names[j] for j in np.flatnonzero(row)) or "(none)"

    for i in np.argsort(p_true, kind="stable")[:n_hardest]:
        detail = f"worst label: {names[worst[i]]}"
        rows.append((int(i), labels(y[i]), labels(predicted[i]), float(p_true[i]), detail))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], first_is_name: bool) -> str:
    def cell(tag: str, j: int, text: str) -> str:
        cls = ' class="name"' if first_is_name and j == 0 else ""
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", j, _e(h)) for j, h in enumerate(header))
    body = "\n".join(
        "<tr>" + "".join(cell("td", j, c) for j, c in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _check_metrics(metrics: Mapping[str, Any], checked: Checked) -> None:
    missing = [key for key in REQUIRED_METRIC_KEYS if key not in metrics]
    if missing:
        raise EvaluationError(None, f"metrics lack required keys: {', '.join(missing)}")
    if metrics["n"] != checked.n:
        raise EvaluationError(
            None, f"metrics describe {metrics['n']} cases but y_true has {checked.n}"
        )
    names = metrics.get("class_names")
    if names is not None and list(names) != list(checked.class_names):
        raise EvaluationError(None, "metrics were computed with different class names")


def write_classification_report(
    out_dir: str | os.PathLike[str],
    *,
    metrics: Mapping[str, Any],
    y_true: object,
    probs: object,
    class_names: Sequence[str],
    ids: Sequence[str],
    thumbnails: Callable[[str], np.ndarray | None] | None = None,
    title: str,
    model_info: Mapping[str, Any] | None = None,
    n_hardest: int = 12,
) -> Path:
    """Write ``metrics.json`` and a self-contained ``report.html`` into ``out_dir``.

    The page shows the headline metrics with 95% bootstrap intervals, the MedMNIST-protocol
    ACC and AUC, a per-class table, confusion matrices (counts and row-normalised), ROC, PR and
    reliability diagrams, and the hardest examples: the cases with the lowest probability on
    their true class (the highest log-loss; for multilabel, on the true value of their worst
    label), with thumbnails when ``thumbnails`` is given. Both files are written atomically.

    Args:
        out_dir: output folder (created if missing).
        metrics: the dict from
            :func:`~medlabel.evaluate.metrics.classification_metrics` for these data; written
            as is to ``metrics.json``. Its task and threshold decide the predicted labels.
        y_true: the labels the metrics were computed on.
        probs: the probabilities the metrics were computed on.
        class_names: the class names, in column order.
        ids: one identifier per case (file name, accession number, dataset index).
        thumbnails: maps an id to a 2-D ``uint8`` grey or ``(H, W, 3)`` RGB array, or
            ``None`` when there is no picture. Other dtypes are min-max scaled; an error is
            logged and the picture left out, so a missing image never costs the report.
        title: page title.
        model_info: optional facts shown at the top (model name, bundle, data split, ...).
        n_hardest: how many hardest examples to show (0 for none).

    Returns:
        The path of ``report.html``.

    Raises:
        EvaluationError: when the metrics lack required keys or do not match the data, the
            ids do not match the cases, or the labels and probabilities are invalid.
    """
    missing = [key for key in ("task", "threshold") if key not in metrics]
    if missing:
        raise EvaluationError(None, f"metrics lack required keys: {', '.join(missing)}")
    checked = check_inputs(y_true, probs, class_names, metrics["task"])
    _check_metrics(metrics, checked)
    id_list = [str(i) for i in ids]
    if len(id_list) != checked.n:
        raise EvaluationError(None, f"got {len(id_list)} ids for {checked.n} cases")
    if not isinstance(n_hardest, int) or n_hardest < 0:
        raise EvaluationError(None, f"n_hardest must be an integer >= 0; got {n_hardest!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        payload = json.dumps(_jsonable(dict(metrics)), indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(None, f"metrics cannot be written as JSON: {exc}") from exc
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(payload + "\n", encoding="utf-8")

    page = _render(metrics, checked, id_list, thumbnails, title, model_info or {}, n_hardest)
    target = out / "report.html"
    with atomic_output(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    logger.info("wrote %s and %s", out / "metrics.json", target)
    return target


def _headline(metrics: Mapping[str, Any]) -> str:
    ci = metrics.get("ci") or {}
    rows = []
    labels = {
        "accuracy": "Accuracy",
        "balanced_accuracy": "Balanced accuracy",
        "auc": "ROC AUC",
        "f1_macro": "Macro F1",
        "ece": "Expected calibration error (15 bins)",
    }
    for key, label in labels.items():
        interval = ci.get(key)
        text = f"{_fmt(interval[0])} – {_fmt(interval[1])}" if interval else "n/a"
        rows.append([_e(label), _e(_fmt(metrics.get(key))), _e(text)])
    boot = metrics.get("bootstrap") or {}
    note = ""
    if boot.get("n_resamples"):
        how = "stratified by class" if boot.get("stratified") else "resampling cases"
        note = (
            f'<p class="small">95% percentile bootstrap intervals, {_e(boot["n_resamples"])} '
            f"resamples ({_e(how)}), seed {_e(boot.get('seed'))}.</p>"
        )
    return _table(["Metric", "Value", "95% CI"], rows, True) + note


def _medmnist(metrics: Mapping[str, Any]) -> str:
    med = metrics.get("medmnist") or {}
    rows = [["ACC", _e(_fmt(med.get("acc")))], ["AUC", _e(_fmt(med.get("auc")))]]
    return _table(["MedMNIST v2 protocol", "Value"], rows, True) + (
        '<p class="small">Computed as in the MedMNIST v2 paper so that numbers compare: '
        "binary ACC thresholds the positive score at &gt; 0.5 (not the chosen threshold); "
        "multiclass AUC is the unweighted mean of one-vs-rest AUCs; multilabel ACC and AUC "
        "average over labels.</p>"
    )


def _per_class(metrics: Mapping[str, Any]) -> str:
    rows = []
    for name, row in (metrics.get("per_class") or {}).items():
        values = [row.get(k) for k in ("precision", "recall", "specificity", "f1", "auc")]
        rows.append([_e(name), _e(_fmt(row.get("support")))] + [_e(_fmt(v)) for v in values])
    header = ["Class", "Support", "Precision", "Recall (sensitivity)", "Specificity", "F1", "AUC"]
    return _table(header, rows, True)


def _hardest_section(
    checked: Checked,
    predicted: np.ndarray,
    ids: list[str],
    thumbnails: Callable[[str], np.ndarray | None] | None,
    n_hardest: int,
) -> str:
    rows = []
    for index, truth, guess, p_true, detail in _hardest(checked, predicted, n_hardest):
        picture = "–"
        if thumbnails is not None:
            try:
                array = thumbnails(ids[index])
                thumb = None if array is None else _thumbnail(array)
            except Exception:  # a bad picture must not cost the whole report
                logger.exception("thumbnail for id %r failed", ids[index])
                thumb = None
            if thumb is not None:
                png, width, height = thumb
                scale = max(1, _MIN_DISPLAY // max(width, height))
                size = f' width="{width * scale}" height="{height * scale}" class="thumb"'
                picture = _img(png, f"thumbnail of {ids[index]}", size)
        rows.append(
            [
                picture,
                _e(ids[index]),
                _e(truth),
                _e(guess),
                _e(f"{p_true:.3f}"),
                _e(detail),
            ]
        )
    header = ["Image", "Id", "True", "Predicted", "p(true)", "Detail"]
    return _table(header, rows, False)


def _render(
    metrics: Mapping[str, Any],
    checked: Checked,
    ids: list[str],
    thumbnails: Callable[[str], np.ndarray | None] | None,
    title: str,
    model_info: Mapping[str, Any],
    n_hardest: int,
) -> str:
    names, task = checked.class_names, checked.task
    predicted = decisions(checked, metrics["threshold"])
    threshold = metrics["threshold"]
    meta = f"Task: {metrics['task']} · cases: {checked.n} · classes: {len(names)}" + (
        f" · decision threshold: {_fmt(threshold)}" if threshold is not None else ""
    )
    parts = page_head(title, meta)
    notes = metrics.get("notes") or []
    if notes:  # caveats (images the model trained on, ...) come before the figures they qualify
        parts += ["<h2>Notes</h2>", "<ul>"]
        parts += [f'<li class="note">{_e(n)}</li>' for n in notes]
        parts += ["</ul>"]
    if model_info:
        rows = [
            [_e(k), _e(v if isinstance(v, str) else json.dumps(_jsonable(v), default=str))]
            for k, v in model_info.items()
        ]
        parts += ["<h2>Model</h2>", _table(["Field", "Value"], rows, True)]
    parts += ["<h2>Headline metrics</h2>", _headline(metrics), _medmnist(metrics)]
    parts += ["<h2>Per class</h2>", _per_class(metrics)]

    counts = plot_confusion_matrix(metrics["confusion_matrix"], names, normalized=False)
    normal = plot_confusion_matrix(metrics["confusion_matrix"], names, normalized=True)
    parts += [
        "<h2>Confusion matrices</h2>",
        '<p class="small">Rows are the true classes, columns the predicted ones.</p>',
        '<div class="figures">',
        _img(counts, "confusion matrix, counts"),
        _img(normal, "confusion matrix, row-normalised"),
        "</div>",
        "<h2>ROC and precision-recall curves</h2>",
        '<div class="figures">',
        _img(plot_roc(checked.y, checked.probs, names, task=task), "ROC curves"),
        _img(plot_pr(checked.y, checked.probs, names, task=task), "precision-recall curves"),
        "</div>",
        "<h2>Calibration</h2>",
        '<div class="figures">',
        _img(plot_reliability(checked.y, checked.probs, task=task), "reliability diagram"),
        "</div>",
    ]
    if n_hardest:
        parts += [
            "<h2>Hardest examples</h2>",
            '<p class="small">The cases with the lowest predicted probability on their true '
            "class (highest loss).</p>",
            _hardest_section(checked, predicted, ids, thumbnails, n_hardest),
        ]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
