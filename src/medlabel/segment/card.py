"""Model cards of segmentation bundles.

Example:
    >>> meta = {"name": "demo", "plan": {"dims": 2, "classes": {"1": "lung"}, "fit": "size",
    ...         "target": [224, 224], "normalization": "zscore", "network": {"name": "unet"}},
    ...         "medlabel_version": "0.1.0", "created": "today"}
    >>> segmentation_card(meta).splitlines()[0]
    '# Model card: demo'
"""

from __future__ import annotations

from typing import Any

__all__ = ["segmentation_card"]


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    classes = metrics.get("classes", {})
    if not classes:
        return ["(none recorded)"]
    from medlabel.segment.labelmap import distance_key

    hd_key, unit = distance_key(next(iter(classes.values())))
    lines = [f"| class | Dice mean | Dice min | HD95 mean ({unit}) | n |", "|---|---|---|---|---|"]
    for name, m in classes.items():
        dice, hd = m.get("dice", {}), m.get(hd_key, {})
        lines.append(
            f"| {name} | {dice.get('mean', float('nan')):.4f} | {dice.get('min', float('nan')):.4f}"
            f" | {hd.get('mean', float('nan')):.2f} | {dice.get('n', 0)} |"
        )
    return lines


def _skipped_lines(skipped: dict[str, Any]) -> list[str]:
    """The training cases left out as unusable, one line each (as many as were recorded).

    Example:
        >>> _skipped_lines({"count": 2, "cases": [{"path": "a.png", "reason": "truncated"}]})
        ['- Skipped as unusable: 2 cases (1 listed)', '  - `a.png`: truncated']
    """
    if not skipped.get("count"):
        return []
    cases = skipped.get("cases", [])
    listed = f" ({len(cases)} listed)" if len(cases) < skipped["count"] else ""
    return [
        f"- Skipped as unusable: {skipped['count']} case{'s' * (skipped['count'] != 1)}{listed}",
        *(f"  - `{e['path']}`: {e['reason']}" for e in cases),
    ]


def segmentation_card(meta: dict[str, Any]) -> str:
    """Markdown model card for a segmentation bundle description ``meta``."""
    plan = meta["plan"]
    data = meta.get("data", {})
    modality = "/".join(meta.get("modalities") or []) or plan.get("modality") or "any modality"
    geometry = (
        f"resized as a whole to {plan['target']} pixels"
        if plan["fit"] == "size"
        else f"resampled to {plan['target']} mm"
    )
    if plan.get("orientation"):
        geometry = f"reoriented to {plan['orientation']} (ITK code), {geometry}"
    val = meta.get("metrics", {}).get("validation", {})
    n = len(meta.get("members") or [])
    lines = [
        f"# Model card: {meta['name']}",
        "",
        f"- Task: {plan['dims']}D segmentation of {', '.join(plan['classes'].values())}",
        f"- Input: {modality} images, {geometry}, "
        f"{plan['normalization']} normalisation; output on the input's own grid",
        f"- Network: {plan['network']['name']} ({plan['network'].get('kwargs', {})})"
        + (f", ensemble of {n} members (probabilities averaged)" if n > 1 else ""),
        *(
            [
                "- Files: ONNX exports only (the torch copy of the same weights was left out "
                "to keep the bundle small; the torch engine rebuilds it from the exports)"
                if engines == ["onnx"]
                else "- Files: torch weights only (no ONNX exports: runs on torch)"
            ]
            if len(engines := meta.get("engines") or []) == 1
            else []
        ),
        *(
            [f"- Fine-tuned from: {start} (its plan and weights)"]
            if (start := (meta.get("training") or {}).get("init_from"))
            else []
        ),
        f"- Made by medlabel {meta['medlabel_version']} on {meta['created']}",
        f"- Training command: `{meta.get('command') or 'Python API'}`",
        "",
        "## Training data",
        f"- Source: {data.get('path', '?')} ({data.get('kind', '?')}); "
        + (
            f"{len(data['val_ids'])} cases in {n} folds, each member trained on "
            f"{data.get('n_train', '?')} and validated on the other "
            f"{data.get('n_val', '?')}, so the validation metrics "
            "below are out of fold"
            if n > 1 and data.get("val_ids")
            else f"{data.get('n_train', '?')} training and {data.get('n_val', '?')} validation "
            "cases"
        ),
        *_skipped_lines(data.get("skipped") or {}),
        f"- Licence: {meta.get('licence') or 'unknown'}",
        "",
        f"## Validation metrics ({val.get('n', '?')} held-out cases, original grids)",
        *_metrics_table(val),
        "",
        *(
            [
                f"## Held-out test ({test.get('n', '?')} cases, never used for training or "
                "selection)",
                *_metrics_table(test),
                "",
            ]
            if (test := meta.get("metrics", {}).get("test"))
            else []
        ),
        "## Intended use and limits",
        meta.get("intended_use")
        or "Research use: automatic pre-annotation to be reviewed by a person. Not a medical "
        "device; not validated for diagnosis. Performance on other scanners, sites or "
        "populations than the training data is unknown until measured.",
        "",
    ]
    return "\n".join(lines)
