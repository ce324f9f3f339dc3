"""The segmentation report: ``metrics.json`` and a self-contained ``report.html``.

The page shows, per class, Dice, IoU, HD95, ASD and volume difference (mean, sd, worst, with
a 95 % bootstrap interval of the mean Dice), box plots of Dice and HD95, a per-case table,
and the worst cases as overlays of prediction and truth side by side.

Example:
    >>> import tempfile
    >>> cases = {"a": {"lung": {"dice": 0.9, "hd95_mm": 2.0}},
    ...          "b": {"lung": {"dice": 0.8, "hd95_mm": 3.0}}}
    >>> out = write_segmentation_report(tempfile.mkdtemp(), cases=cases, title="demo")
    >>> out.name
    'report.html'
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from medlabel.evaluate.report import _e, _fmt, _img, _jsonable, _table, page_head
from medlabel.evaluate.segmentation import distance_key, summarize_cases
from medlabel.io.atomic import atomic_output

__all__ = ["write_segmentation_report"]

Cases = Mapping[str, Mapping[str, Mapping[str, float | None]]]


def _boxplot(cases: Cases, metric: str, label: str) -> bytes | None:
    classes = sorted({c for case in cases.values() for c in case})
    data = [
        [v for case in cases.values() if (v := case.get(c, {}).get(metric)) is not None]
        for c in classes
    ]
    if not any(data):
        return None
    fig = Figure(figsize=(1.2 + 1.1 * len(classes), 3.2), dpi=100)
    ax = fig.subplots()
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(classes) + 1), classes, rotation=20)
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _png(picture: Image.Image, width: int = 360) -> bytes:
    pic = picture.copy()
    pic.thumbnail((width, width))
    buf = io.BytesIO()
    pic.save(buf, format="PNG")
    return buf.getvalue()


def write_segmentation_report(
    out_dir: str | os.PathLike[str],
    *,
    cases: Cases,
    title: str,
    model_info: Mapping[str, Any] | None = None,
    overlays: Callable[[str], tuple[Image.Image, Image.Image] | None] | None = None,
    n_worst: int = 6,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json`` (``summary`` + ``cases`` + ``extra``) and ``report.html``.

    Args:
        out_dir: output folder (created).
        cases: ``{case_id: {class: {metric: value}}}`` from
            :func:`~medlabel.evaluate.segmentation.case_metrics`.
        title: page title.
        model_info: facts shown at the top.
        overlays: maps a case id to (prediction overlay, truth overlay) pictures.
        n_worst: how many worst cases (lowest mean Dice) to show.
        extra: more entries for ``metrics.json`` (timing, split notes).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_cases(cases)
    payload = {"summary": summary, "cases": cases, "n": len(cases), **dict(extra or {})}
    with atomic_output(out / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(payload), indent=2))
    classes = sorted(summary)
    # grid units (px) when the images gave no pixel size, as the metrics say
    some = next((summary[c] for c in classes), {})
    hd_key, unit = distance_key(some)
    asd_key, _ = distance_key(some, "asd")
    planar = any(str(k).startswith("area_") for k in some)
    rows = []
    for c in classes:
        s = summary[c]
        ci = s.get("dice_ci")
        rows.append(
            [
                _e(c),
                _fmt(s.get("dice", {}).get("mean"))
                + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""),
                _fmt(s.get("dice", {}).get("sd")),
                _fmt(s.get("dice", {}).get("min")),
                _fmt(s.get("iou", {}).get("mean")),
                _fmt(s.get(hd_key, {}).get("mean"), 2),
                _fmt(s.get(asd_key, {}).get("mean"), 2),
                _fmt(s.get("volume_diff_pct", {}).get("mean"), 1),
                str(s.get("dice", {}).get("n", 0)),
            ]
        )
    parts = page_head(title, f"cases: {len(cases)}")
    if model_info:
        info = [
            [_e(k), _e(v if isinstance(v, str) else json.dumps(_jsonable(v)))]
            for k, v in model_info.items()
        ]
        parts += ["<h2>Model</h2>", _table(["Field", "Value"], info, True)]
    parts += [
        "<h2>Per class</h2>",
        _table(
            [
                "Class",
                "Dice mean [95% CI]",
                "Dice sd",
                "Dice worst",
                "IoU",
                f"HD95 ({unit})",
                f"ASD ({unit})",
                # the same relative difference, of areas in 2D
                "Area diff (%)" if planar else "Volume diff (%)",
                "n",
            ],
            rows,
            True,
        ),
        '<p class="small">Distances are in '
        + ("millimetres" if unit == "mm" else "pixels (the images give no pixel size)")
        + " on each case's own grid; a class that is "
        "empty in only one of prediction and truth has no distance and is left out of the "
        "distance means.</p>",
        '<div class="figures">',
    ]
    for metric, label in (("dice", "Dice"), (hd_key, f"HD95 ({unit})")):
        png = _boxplot(cases, metric, label)
        if png:
            parts.append(_img(png, f"box plot of {label}"))
    parts.append("</div>")

    def mean_dice(cid: str) -> float:
        vals = [m.get("dice") for m in cases[cid].values()]
        return float(np.mean([v for v in vals if v is not None] or [0.0]))

    order = sorted(cases, key=mean_dice)
    if overlays and n_worst:
        parts += [
            "<h2>Worst cases</h2>",
            '<p class="small">Lowest mean Dice first; left: prediction, right: truth.</p>',
        ]
        for cid in order[:n_worst]:
            pics = overlays(cid)
            if pics is None:
                continue
            parts += [
                f"<h3>{_e(cid)} (mean Dice {mean_dice(cid):.3f})</h3>",
                '<div class="figures">',
                _img(_png(pics[0]), f"{cid} prediction"),
                _img(_png(pics[1]), f"{cid} truth"),
                "</div>",
            ]
    case_rows = [
        [_e(cid)]
        + [
            f"{_fmt(m.get('dice'))} / {_fmt(m.get(hd_key), 1)}"
            for m in (cases[cid].get(c, {}) for c in classes)
        ]
        for cid in order
    ]
    parts += [
        f"<h2>Per case (Dice / HD95 {unit}), worst first</h2>",
        _table(["Case", *classes], case_rows, True),
        "</body>",
        "</html>",
        "",
    ]
    report = out / "report.html"
    with atomic_output(report) as tmp:
        Path(tmp).write_text("\n".join(parts), encoding="utf-8")
    return report
