"""Batch prediction with a bundle over a file, a folder of images or a dataset split.

Rows carry the item id, the predicted label, its calibrated confidence, one ``p_<class>``
column per class, the true label when the input is a labelled dataset, and an ``error``
column for inputs that could not be read (the batch goes on). Where the bundle has the
checks, ``ood`` marks images outside its training distribution (:mod:`.ood`) and
``low_resolution`` images smaller than every training image, which the network sees enlarged
beyond anything it learnt from (:mod:`.resolution`).

Example:
    >>> rows = [{"id": "a.png", "label": "normal", "confidence": 0.9, "p_normal": 0.9,
    ...          "p_pneumonia": 0.1, "error": ""}]
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "preds.csv"
    >>> write_predictions(rows, out)
    >>> out.read_text().splitlines()[0]
    'id,label,confidence,p_normal,p_pneumonia,true_label,error'
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medlabel.classify.bundle import Bundle
from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.data.sources import open_dataset
from medlabel.errors import MedlabelError
from medlabel.io import read_image
from medlabel.io.atomic import atomic_output
from medlabel.io.formats import detect_format
from medlabel.preprocess.network import native_size

__all__ = ["predict_dataset", "predict_paths", "predict_source", "write_predictions"]

log = logging.getLogger(__name__)


def _rows(
    bundle: Bundle,
    ids: list[str],
    arrays: list[np.ndarray],
    sizes: list[tuple[int, ...]],
    *,
    tta: bool,
    truth: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    probs, distance = bundle.predict_with_ood(np.stack(arrays), tta=tta)
    small = bundle.low_resolution(np.array(sizes))
    labels = bundle.decide(probs)
    rows = []
    for k, item in enumerate(ids):
        row: dict[str, Any] = {"id": item}
        if bundle.task == "multilabel":
            row["label"] = "|".join(
                c for c, v in zip(bundle.class_names, labels[k], strict=True) if v
            )
            row["confidence"] = float(np.max(np.where(labels[k] > 0, probs[k], 1 - probs[k])))
        else:
            row["label"] = bundle.class_names[int(labels[k])]
            row["confidence"] = float(probs[k, int(labels[k])])
        for c, name in enumerate(bundle.class_names):
            row[f"p_{name}"] = float(probs[k, c])
        if distance is not None and bundle.ood_check is not None:
            row["ood"] = bool(distance[k] > bundle.ood_check.threshold)
            row["ood_distance"] = round(float(distance[k]), 3)
        if small is not None:
            row["low_resolution"] = bool(small[k])
        if truth is not None:
            row["true_label"] = truth[k]
        row["error"] = ""
        rows.append(row)
    return rows


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_paths(
    bundle: Bundle,
    paths: list[Path],
    *,
    tta: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predict image files one batch at a time; unreadable files become error rows."""
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=None if progress else True)
    for chunk in _batches(paths, batch_size):
        arrays, sizes, ok = [], [], []
        for path in chunk:
            try:
                image = read_image(path)
                arrays.append(bundle.prepare(image))
                sizes.append(native_size(image, bundle.spec))
                ok.append(str(path))
            except MedlabelError as err:
                rows.append({"id": str(path), "label": "", "error": err.reason})
        if arrays:
            rows += _rows(bundle, ok, arrays, sizes, tta=tta)
        bar.update(len(chunk))
    bar.close()
    return rows


def predict_dataset(
    bundle: Bundle,
    dataset: ClassificationDataset,
    split: str,
    *,
    tta: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predict one split of a labelled dataset (rows include ``true_label``)."""
    idx = dataset.require_split(split)
    rows: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(idx), desc=f"predict {split}", unit="img", disable=None if progress else True
    )
    for chunk in _batches(list(idx), batch_size):
        arrays, sizes, ok, truth = [], [], [], []
        for i in chunk:
            try:
                image = dataset.image(int(i))
                arrays.append(bundle.prepare(image))
                sizes.append(native_size(image, bundle.spec))
            except MedlabelError as err:
                rows.append({"id": dataset.ids[int(i)], "label": "", "error": err.reason})
                continue
            ok.append(dataset.ids[int(i)])
            lab = dataset.labels[int(i)]
            truth.append(
                "|".join(c for c, v in zip(dataset.class_names, lab, strict=True) if v)
                if np.ndim(lab)
                else dataset.class_names[int(lab)]
            )
        if arrays:
            rows += _rows(bundle, ok, arrays, sizes, tta=tta, truth=truth)
        bar.update(len(chunk))
    bar.close()
    return rows


def predict_source(
    bundle: Bundle,
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    tta: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Predict a file, a folder of image files, or a dataset (``.npz``, ``.csv``, class folders).

    A folder that holds image files directly is a folder of images; one that holds only
    sub-folders is read as a class-folder dataset (and, when it is not a valid one, for
    instance with an empty class folder, as a folder of images without true labels).

    Raises:
        MedlabelError: ``source`` does not exist, or is a folder without images.
        DatasetError: a data set that cannot be read, or lacks the split asked for.
    """
    p = Path(source)
    if not p.exists():
        raise MedlabelError(p, "no such file or folder")
    if p.is_file() and p.suffix.lower() not in (".npz", ".csv"):
        return predict_paths(bundle, [p], tta=tta, batch_size=batch_size, progress=progress)
    if p.is_dir() and not any(
        f.is_file() and detect_format(f) not in (None, "medmnist") for f in p.rglob("*")
    ):
        raise MedlabelError(p, "no images found in this folder or below it")
    holds_images = p.is_dir() and any(
        f.is_file() and detect_format(f) is not None for f in p.iterdir()
    )

    def every_image() -> list[Path]:
        return sorted(
            f for f in p.rglob("*") if f.is_file() and detect_format(f) not in (None, "medmnist")
        )

    if holds_images and split is None:
        return predict_paths(
            bundle, every_image(), tta=tta, batch_size=batch_size, progress=progress
        )
    try:
        dataset = open_dataset(p)
    except DatasetError as err:
        if split is not None or not p.is_dir():
            raise
        # labels are a bonus here: predict what there is (an empty class folder, one class)
        log.warning(
            "%s is not a labelled data set (%s): predicting every image below it without "
            "true labels",
            p,
            err.reason,
        )
        return predict_paths(
            bundle, every_image(), tta=tta, batch_size=batch_size, progress=progress
        )
    chosen = split or ("test" if dataset.has_split("test") else "train")
    return predict_dataset(
        bundle, dataset, chosen, tta=tta, batch_size=batch_size, progress=progress
    )


def write_predictions(rows: list[dict[str, Any]], out: str | os.PathLike[str]) -> None:
    """Write prediction rows as CSV (atomically); columns in a stable order."""
    columns: list[str] = ["id", "label", "confidence"]
    for row in rows:
        for key in row:
            if key.startswith("p_") and key not in columns:
                columns.append(key)
    columns += [
        c for c in ("ood", "ood_distance", "low_resolution") if any(c in row for row in rows)
    ]
    columns += ["true_label", "error"]
    with atomic_output(out) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in columns})
