"""Evaluating a bundle on a dataset split: metrics, calibration, report.

The decision threshold is the one stored in the bundle (chosen on validation data when the
model was trained), never one tuned on the split being evaluated.

Example:
    >>> import numpy as np
    >>> thumbnail_of(np.zeros((1, 8, 8), np.uint8)).shape
    (8, 8)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.classify.bundle import Bundle
from medlabel.data.arrays import load_arrays
from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.evaluate import classification_metrics, write_classification_report
from medlabel.models.files import trained_ids

__all__ = ["evaluate_bundle", "thumbnail_of"]


def thumbnail_of(network_input: np.ndarray) -> np.ndarray:
    """A displayable 2D uint8 picture of a network input (first channel, middle slice)."""
    arr = network_input[0] if network_input.shape[0] in (1, 3) else network_input
    if network_input.shape[0] == 3:
        arr = np.moveaxis(network_input, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] != 3:
        arr = arr[arr.shape[0] // 2]
    return np.ascontiguousarray(arr)


def evaluate_bundle(
    bundle: Bundle,
    dataset: ClassificationDataset,
    *,
    split: str = "test",
    out_dir: str | os.PathLike[str],
    tta: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``metrics.json`` and ``report.html`` for ``bundle`` on ``dataset[split]``."""
    if list(dataset.class_names) != list(bundle.class_names):
        raise DatasetError(
            dataset.source.get("path"),
            f"data set classes {dataset.class_names} differ from the model's {bundle.class_names}",
        )
    idx = dataset.indices(split)
    if not len(idx):
        raise DatasetError(dataset.source.get("path"), f"data set has no {split!r} split")
    arrays = load_arrays(dataset, idx, bundle.spec, progress=progress, desc=f"load {split}")
    probs = bundle.predict_arrays(arrays.images, tta=tta)
    task = "multiclass" if bundle.task == "ordinal" else bundle.task
    metrics = classification_metrics(
        arrays.labels,
        probs,
        bundle.class_names,
        task=task,  # type: ignore[arg-type]
        threshold=bundle.threshold,
    )
    metrics["split"] = split
    seen = trained_ids(bundle.meta)
    trained_on = sum(1 for sample in arrays.ids if sample in seen)
    metrics["trained_on"] = trained_on
    if trained_on:
        metrics["notes"].append(
            f"{trained_on} of the {len(arrays.ids)} images trained this model: these figures "
            "flatter it; evaluate on images it never saw"
        )
    metrics["skipped"] = [{"id": i, "reason": r} for i, r in arrays.failures]
    metrics["model"] = bundle.name
    position = {sample: k for k, sample in enumerate(arrays.ids)}
    write_classification_report(
        Path(out_dir),
        metrics=metrics,
        y_true=arrays.labels,
        probs=probs,
        class_names=bundle.class_names,
        ids=arrays.ids,
        thumbnails=lambda sample: thumbnail_of(arrays.images[position[sample]]),
        title=f"{bundle.name} on {dataset.name} ({split})",
        model_info={
            "bundle": str(bundle.path),
            "architecture": bundle.meta.get("architecture", {}).get("name"),
            "members": len(bundle.meta.get("members", [])),
            "threshold": bundle.threshold,
            "temperature": bundle.temperature,
            "tta": tta,
        },
    )
    return metrics
