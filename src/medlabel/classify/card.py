"""Model cards: the human-readable description written into every bundle.

A card states the task and input, the architecture, the training data with its licence, the
validation metrics (never test), the intended use and limits, and the exact command that
made the bundle.

Example:
    >>> meta = {"name": "demo", "task": "binary", "class_names": ["a", "b"],
    ...         "input": {"channels": 1, "size": [28, 28]}, "architecture": {"name": "compact"},
    ...         "members": [{}], "medlabel_version": "0.1.0", "created": "today"}
    >>> model_card(meta).splitlines()[0]
    '# Model card: demo'
"""

from __future__ import annotations

import json
from typing import Any

from medlabel.classify.resolution import describe_size

__all__ = ["model_card"]


def model_card(meta: dict[str, Any]) -> str:
    """Markdown text of the model card for a bundle description ``meta``."""
    data = meta.get("data", {})
    source = data.get("source", {})
    metrics = meta.get("metrics", {})
    lines = [
        f"# Model card: {meta['name']}",
        "",
        f"- Task: {meta['task']} classification into {', '.join(meta['class_names'])}",
        f"- Input: {meta['input']['channels']} channel(s), {meta['input']['size']} pixels, "
        "any readable image (grey conversion and percentile scaling applied automatically)",
        f"- Model: {meta['architecture']['name']} x {len(meta['members'])} member(s)",
        *(
            [f"- Fine-tuned from: {start} (its network, input size, normalisation and weights)"]
            if (start := (meta.get("train_config") or {}).get("init_from"))
            else []
        ),
        f"- Made by medlabel {meta['medlabel_version']} on {meta['created']}",
        f"- Training command: `{meta.get('command') or 'Python API'}`",
        "",
        "## Training data",
        f"- Source: {source.get('path', '?')} ({source.get('kind', '?')})",
        f"- Licence: {meta.get('licence') or source.get('licence', 'unknown')}",
        f"- Counts per split: {json.dumps(data.get('counts', {}))}",
        *(
            [f"- Images used: {data['train_used']} for training, {data['val_used']} to validate"]
            if "train_used" in data and "val_used" in data
            else []
        ),
        *(
            [
                f"- Native size of the training images: {_size_range(data['native_size'])} "
                "pixels. Smaller inputs, which the network sees enlarged beyond any training "
                "image, are marked `low_resolution` by `medlabel predict`, `evaluate` and "
                "`annotate`."
            ]
            if data.get("native_size")
            else []
        ),
        "",
        *_skipped_section(data),
        "## Metrics (validation split, never test)",
        "```",
        json.dumps(metrics, indent=2),
        "```",
        "",
        *(
            [
                "No out-of-distribution check: too few training or validation images to fit "
                "one, so `medlabel annotate` cannot flag images unlike the training data.",
                "",
            ]
            if not meta.get("ood") and meta.get("kind") == "cnn"
            else []
        ),
        *(
            [
                "## Out-of-distribution check",
                f"Images whose deep features lie farther from the training images' than "
                f"{meta['ood']['quantile']:.1%} of the validation images' (Mahalanobis distance "
                f"> {meta['ood']['threshold']:.1f}) are flagged as out of distribution: their "
                "label and confidence do not mean anything, and `medlabel annotate` gives them "
                "uncertainty 1.",
                "",
            ]
            if meta.get("ood")
            else []
        ),
        "## Intended use and limits",
        meta.get("intended_use")
        or "Research use: automatic pre-annotation to be reviewed by a person. Not a medical "
        "device; not validated for diagnosis. Performance on data from other scanners, sites or "
        "populations than the training data is unknown until measured.",
        "",
    ]
    return "\n".join(lines)


def _size_range(record: dict[str, list[int]]) -> str:
    """``224 x 224`` or ``200 x 180 to 512 x 512`` (width first)."""
    low, high = describe_size(record["min"]), describe_size(record["max"])
    return low if low == high else f"{low} to {high}"


def _skipped_section(data: dict[str, Any]) -> list[str]:
    """Lines of the "Skipped files" section (none when nothing was skipped).

    Example:
        >>> files = [{"path": "a.png", "reason": "file is truncated"}]
        >>> print("\\n".join(_skipped_section({"skipped": 3, "skipped_files": files})))
        ## Skipped files
        3 input file(s) were not used (missing, unreadable or not an image):
        - `a.png`: file is truncated
        - ... and 2 more
        <BLANKLINE>
    """
    total = int(data.get("skipped") or 0)
    if not total:
        return []
    listed = data.get("skipped_files") or []
    return [
        "## Skipped files",
        f"{total} input file(s) were not used (missing, unreadable or not an image):",
        *(f"- `{f['path']}`: {f['reason']}" for f in listed),
        *([f"- ... and {total - len(listed)} more"] if total > len(listed) else []),
        "",
    ]
