"""Evaluating a bundle on a dataset split: metrics, calibration, report.

The decision threshold is the one stored in the bundle (chosen on validation data when the
model was trained), never one tuned on the split being evaluated.

Example:
    >>> import numpy as np
    >>> thumbnail_of(np.zeros((1, 8, 8), np.uint8)).shape
    (8, 8)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.classify.bundle import Bundle
from medlabel.classify.resolution import describe_size
from medlabel.data.arrays import load_arrays
from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.evaluate import classification_metrics, write_classification_report
from medlabel.models.files import trained_ids

__all__ = ["evaluate_bundle", "thumbnail_of"]

log = logging.getLogger(__name__)


def thumbnail_of(network_input: np.ndarray) -> np.ndarray:
    """A displayable 2D uint8 picture of a network input (first channel, middle slice)."""
    arr = network_input[0] if network_input.shape[0] in (1, 3) else network_input
    if network_input.shape[0] == 3:
        arr = np.moveaxis(network_input, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] != 3:
        arr = arr[arr.shape[0] // 2]
    return np.ascontiguousarray(arr)


def _out_of_distribution(
    bundle: Bundle,
    distance: np.ndarray | None,
    y_true: np.ndarray,
    probs: np.ndarray,
    task: str,
    notes: list[str],
) -> dict[str, Any] | None:
    """What the bundle's out-of-distribution check says of the evaluated images (``None``
    without a check): how many it flags, how many chance would, and, where clearly more are
    flagged, the headline figures on the images it lets through, with a note."""
    check = bundle.ood_check
    if check is None or distance is None:
        return None
    inside = distance <= check.threshold
    flagged = int(np.sum(~inside))
    chance = 1.0 - check.quantile
    result: dict[str, Any] = {
        "flagged": flagged,
        "expected_by_chance": round(chance * len(distance), 1),
        "excess": flagged > max(3, 3 * chance * len(distance)),
    }
    if not result["excess"]:
        return result
    notes.append(
        f"{flagged} of the {len(distance)} images ({flagged / len(distance):.0%}) lie outside "
        f"the model's training distribution by its check (about {chance:.1%} expected by "
        "chance): these figures describe the model on data unlike what it learned from"
    )
    if inside.any():
        result["inside"] = _headline(bundle, y_true[inside], probs[inside], task)
    return result


def _headline(bundle: Bundle, y_true: np.ndarray, probs: np.ndarray, task: str) -> dict[str, Any]:
    """Count, accuracy, balanced accuracy and AUC of a subset of the evaluated images."""
    kept = classification_metrics(
        y_true,
        probs,
        bundle.class_names,
        task=task,  # type: ignore[arg-type]
        threshold=bundle.threshold,
        n_bootstrap=0,
    )
    return {k: kept[k] for k in ("n", "accuracy", "balanced_accuracy", "auc")}


def _low_resolution(
    bundle: Bundle,
    sizes: np.ndarray | None,
    y_true: np.ndarray,
    probs: np.ndarray,
    task: str,
    notes: list[str],
) -> dict[str, Any] | None:
    """How many evaluated images are smaller than every training image (``None`` when the
    bundle does not record its training sizes), with a note and the headline figures on the
    others where there are any."""
    small = None if sizes is None else bundle.low_resolution(sizes)
    record = bundle.training_sizes
    if small is None or record is None:
        return None
    count = int(small.sum())
    result: dict[str, Any] = {"count": count, "smallest_training_size": record["min"]}
    if not count:
        return result
    notes.append(
        f"{count} of the {len(small)} images are smaller than every image the model trained on "
        f"(smallest {describe_size(record['min'])} pixels) and were enlarged to "
        f"{describe_size(bundle.spec.size)}: these figures describe the model on detail it "
        "never saw"
    )
    if (~small).any():
        result["others"] = _headline(bundle, y_true[~small], probs[~small], task)
    return result


def evaluate_bundle(
    bundle: Bundle,
    dataset: ClassificationDataset,
    *,
    split: str = "test",
    out_dir: str | os.PathLike[str],
    tta: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``metrics.json`` and ``report.html`` for ``bundle`` on ``dataset[split]``
    (``split="all"``: every image of the data set).

    The data set's classes are matched to the model's by name, in any order and, where
    unambiguous, in any case (``normal`` is ``NORMAL``); single-label data may lack some.

    Raises:
        DatasetError: a class of the data set that the model does not have; no such split.
    """
    if list(dataset.class_names) != list(bundle.class_names):
        try:
            aligned = dataset.with_classes(bundle.class_names)
        except DatasetError:
            raise DatasetError(
                dataset.source.get("path"),
                f"data set classes {list(dataset.class_names)} differ from the model's "
                f"{list(bundle.class_names)}",
            ) from None
        log.info(
            "data set classes %s evaluated as the model's %s",
            list(dataset.class_names),
            list(bundle.class_names),
        )
        dataset = aligned
    idx = dataset.require_split(split)
    arrays = load_arrays(dataset, idx, bundle.spec, progress=progress, desc=f"load {split}")
    probs, distance = bundle.predict_with_ood(arrays.images, tta=tta)
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
    trained_on = int(dataset.seen_by(arrays.indices, seen).sum())
    metrics["trained_on"] = trained_on
    if trained_on:
        metrics["notes"].append(
            f"{trained_on} of the {len(arrays.ids)} images trained this model: these figures "
            "flatter it; evaluate on images it never saw"
        )
    metrics["out_of_distribution"] = _out_of_distribution(
        bundle, distance, np.asarray(arrays.labels), probs, task, metrics["notes"]
    )
    metrics["low_resolution"] = _low_resolution(
        bundle, arrays.sizes, np.asarray(arrays.labels), probs, task, metrics["notes"]
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
