"""``report.html`` of an annotation job: what was found, what to review first, what failed.

Sections: the counts (items done, failed, skipped, resumed, files passed over); per model the
labels found and a histogram of confidence (classification) or uncertainty (segmentation);
the **review queue**: results sorted by uncertainty, most uncertain first, with the item's
thumbnail or mask overlay; failed items with their reasons; skipped pairs grouped by reason;
and where the time went. Pictures are linked from the job folder (not embedded), so the page
stays small for large archives.

Example:
    >>> import tempfile, pathlib
    >>> from medlabel.annotate.job import JobSummary
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"item": "a", "source": "a.png", "model": "m", "task": "classification",
    ...          "status": "done", "label": "x", "confidence": 0.7, "uncertainty": 0.6,
    ...          "error": "", "seconds": 0.01}]
    >>> path = write_annotation_report(rows, JobSummary(out=out, items=1, done=1), out)
    >>> "Review queue" in path.read_text()
    True
"""

from __future__ import annotations

import html
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from medlabel.evaluate.report import _e, _fmt, _img, _table, page_head
from medlabel.io.atomic import atomic_output

__all__ = ["write_annotation_report"]

#: Results shown per model in the review queue.
QUEUE_LENGTH = 100


def _histogram(values: list[float], title: str, xlabel: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = Figure(figsize=(4.2, 2.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(values, bins=20, range=(0.0, 1.0), color="#4477aa")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("results")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _picture(row: dict[str, Any]) -> str:
    rel = (row.get("outputs") or {}).get("png") or row.get("thumbnail") or ""
    if not rel:
        return ""
    return f'<a href="{_e(rel)}"><img class="thumb" src="{_e(rel)}" alt="" height="96"></a>'


def _model_section(model: str, rows: list[dict[str, Any]]) -> list[str]:
    done = [r for r in rows if r.get("status") == "done"]
    task = rows[0].get("task", "")
    lines = [f"<h3>{_e(model)} <span class='small'>({_e(task)})</span></h3>"]
    counts = Counter(r.get("label") or "(nothing found)" for r in done)
    table = _table(
        ["label", "results"],
        [[_e(k), str(v)] for k, v in counts.most_common()],
        first_is_name=True,
    )
    figure = ""
    if task == "classification":
        values = [float(r["confidence"]) for r in done if r.get("confidence") is not None]
        if values:
            figure = _img(_histogram(values, f"{model}: confidence", "confidence"), "confidence")
    else:
        values = [float(r["uncertainty"]) for r in done if r.get("uncertainty") is not None]
        if values:
            figure = _img(
                _histogram(values, f"{model}: uncertainty", "mean voxel entropy"), "uncertainty"
            )
    lines.append(f"<div class='figures'>{table}{figure}</div>")
    outside = sum(1 for r in done if r.get("ood"))
    if outside:
        why = (
            "deep-feature distance above its threshold"
            if task == "classification"
            else "field of view, structure sizes or the network's entropy far from its training"
            " and validation images"
        )
        lines.append(
            f"<p><b>{outside} of {len(done)}</b> images lie outside the model's training "
            f"distribution ({why}): their {'labels' if task == 'classification' else 'masks'} "
            "are not meaningful, their uncertainty is 1 and they lead the review queue.</p>"
        )
    small = sum(1 for r in done if r.get("low_resolution"))
    if small:
        lines.append(
            f"<p><b>{small} of {len(done)}</b> images are smaller than every image the model "
            "trained on, so it saw them enlarged: their labels are less reliable (see each "
            "one's note).</p>"
        )
    return lines


def _queue(model: str, done: list[dict[str, Any]]) -> list[str]:
    if not done:
        return []
    queue = sorted(
        done, key=lambda r: (r.get("uncertainty") is None, -(r.get("uncertainty") or 0.0))
    )[:QUEUE_LENGTH]
    return [
        f"<h3>{_e(model)} <span class='small'>({len(queue)} of {len(done)})</span></h3>",
        _table(
            ["item", "picture", "label", "confidence", "uncertainty"],
            [
                [
                    _e(r.get("source")),
                    _picture(r),
                    _e(r.get("label") or "(nothing found)")
                    + (" <b>(out of distribution)</b>" if r.get("ood") else "")
                    + "".join(
                        f"<br><span class='small'>{_e(n)}</span>" for n in r.get("notes", [])
                    ),
                    _fmt(r.get("confidence")),
                    _fmt(r.get("uncertainty")),
                ]
                for r in queue
            ],
            first_is_name=True,
        ),
    ]


def write_annotation_report(
    rows: list[dict[str, Any]], summary: Any, out: str | os.PathLike[str]
) -> Path:
    """Write ``out/report.html`` and return its path."""
    target = Path(out) / "report.html"
    lines = page_head(
        "medlabel annotation report",
        f"{summary.items} items: {summary.done} done, {summary.failed} failed, "
        f"{summary.skipped} with no applicable model; {summary.resumed} resumed from an earlier "
        f"run; {summary.ignored_files} non-image files passed over; {summary.seconds:.1f} s.",
    )
    lines.append(
        "<p class='small'>Files: <a href='manifest.csv'>manifest.csv</a>, "
        "<a href='manifest.jsonl'>manifest.jsonl</a>, masks under <code>masks/</code>.</p>"
    )
    passed = getattr(summary, "passed_over", [])
    if passed:
        listed = "".join(
            f"<li><code>{html.escape(p['source'])}</code>: {html.escape(p['reason'])}</li>"
            for p in passed
        )
        lines.append(
            f"<details><summary>{len(passed)} file(s) passed over for a known reason</summary>"
            f"<ul class='small'>{listed}</ul></details>"
        )
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_model.setdefault(str(r.get("model")), []).append(r)
    lines.append("<h2>Results per model</h2>")
    for model, mrows in by_model.items():
        if any(r.get("status") == "done" for r in mrows):
            lines += _model_section(model, mrows)

    lines.append("<h2>Review queue</h2>")
    lines.append(
        "<p class='small'>Per model, most uncertain first (classification: normalised "
        "entropy of the calibrated probabilities, 0 sure, 1 a uniform guess, measured from "
        "the decision threshold of a binary model that has one; segmentation: "
        "mean voxel entropy inside the structures). Recipes are rule-based and give no "
        "uncertainty; their results are listed by item.</p>"
    )
    for model, mrows in by_model.items():
        lines += _queue(model, [r for r in mrows if r.get("status") == "done"])
    failed = [r for r in rows if r.get("status") == "failed"]
    lines.append(f"<h2>Failed ({len(failed)})</h2>")
    if failed:
        lines.append(
            _table(
                ["item", "model", "reason"],
                [[_e(r.get("source")), _e(r.get("model")), _e(r.get("error"))] for r in failed],
                first_is_name=True,
            )
        )
    skipped = Counter(
        (str(r.get("model")), str(r.get("error"))) for r in rows if r.get("status") == "skipped"
    )
    if skipped:
        lines.append("<h2>Skipped (model does not apply)</h2>")
        lines.append(
            _table(
                ["model", "reason", "items"],
                [[_e(m), _e(why), str(n)] for (m, why), n in skipped.most_common()],
                first_is_name=True,
            )
        )
    lines.append("<h2>Time</h2>")
    timing = dict(summary.timing or {})
    lines.append(
        _table(
            ["step", "seconds"],
            [[_e(k), f"{v:.2f}"] for k, v in timing.items()]
            + [["total (wall)", f"{summary.seconds:.2f}"]],
            first_is_name=True,
        )
    )
    lines.append(
        "<p class='small'>Reading runs in background threads, so its seconds overlap with "
        "the models' and can add up to more than the wall time.</p>"
    )
    lines += ["</body>", "</html>"]
    with atomic_output(target) as tmp:
        tmp.write_text("\n".join(lines))
    return target
