"""Building a :class:`ClassificationDataset` from a MedMNIST file, class folders or a CSV.

* MedMNIST ``.npz`` (any official flag, 2D or 3D, any size): splits as published, class names
  and task from the catalogue when the file name is an official flag.
* A folder with one sub-folder per class (``NORMAL/``, ``PNEUMONIA/``), or with ``train/``,
  ``val/`` and ``test/`` folders each holding class sub-folders. Files are found recursively,
  any readable format (DICOM files without extension included); other files are recorded as
  skipped.
* A CSV manifest with columns ``path,label`` and optional ``split`` and ``group`` (patient)
  columns; paths are relative to the CSV. Multi-label rows separate labels with ``|``.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pneumoniamnist.npz"
    >>> np.savez(path, train_images=np.zeros((4, 28, 28), np.uint8),
    ...          train_labels=np.array([[0], [1], [1], [0]]),
    ...          test_images=np.zeros((2, 28, 28), np.uint8), test_labels=np.array([[1], [0]]))
    >>> ds = open_dataset(path)
    >>> ds.class_names, ds.task, ds.counts()["test"]
    (['normal', 'pneumonia'], 'binary', {'normal': 1, 'pneumonia': 1})
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.data.catalog import MEDMNIST
from medlabel.data.dataset import SPLITS, ClassificationDataset, DatasetError
from medlabel.image import MedicalImage
from medlabel.io import read_image
from medlabel.io.formats import detect_format
from medlabel.io.medmnist import MedMNISTArchive

__all__ = ["from_csv", "from_folder", "from_medmnist", "open_dataset"]

log = logging.getLogger(__name__)

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def from_medmnist(path: str | os.PathLike[str]) -> ClassificationDataset:
    """A MedMNIST ``.npz`` file with its official splits."""
    archive = MedMNISTArchive(path)
    p = Path(path)
    flag = re.sub(r"_(28|64|128|224)$", "", p.stem.lower())
    info = MEDMNIST.get(flag)
    ids: list[str] = []
    labels, splits, offsets = [], [], {}
    for split in archive.splits:
        lab = archive.labels(split)
        offsets[split] = len(ids)
        ids += [f"{split}/{i}" for i in range(len(lab))]
        labels.append(lab)
        splits += [split] * len(lab)
    label_arr = np.concatenate(labels)
    multilabel = label_arr.ndim == 2
    if info is not None:
        names = list(info.labels)
        task = info.task
    else:
        k = label_arr.shape[1] if multilabel else int(label_arr.max()) + 1
        names = [str(i) for i in range(k)]
        task = "multilabel" if multilabel else ("binary" if k == 2 else "multiclass")
    starts = sorted(offsets.items(), key=lambda kv: kv[1])

    def locate(i: int) -> tuple[str, int]:
        for split, start in reversed(starts):
            if i >= start:
                return split, i - start
        raise IndexError(i)

    def load(i: int) -> MedicalImage:
        split, j = locate(i)
        return archive.image(split, j)

    return ClassificationDataset(
        name=flag,
        class_names=names,
        ids=ids,
        labels=label_arr.astype(int),
        splits=np.array(splits, dtype=object),
        loader=load,
        task=task,  # type: ignore[arg-type]
        source={
            "kind": "medmnist",
            "path": str(p),
            "flag": flag,
            "licence": info.licence if info else "see the data set's terms",
        },
    )


def _image_files(folder: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    files = []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or f.name.startswith("."):
            continue
        fmt = detect_format(f)
        if fmt in (None, "medmnist"):
            skipped.append((str(f), "not an image file medlabel reads"))
        else:
            files.append(f)
    return files


def _loader(paths: list[Path]) -> Any:
    def load(i: int) -> MedicalImage:
        return read_image(paths[i])

    return load


def _groups(paths: list[Path], pattern: str | None) -> np.ndarray | None:
    """Group (patient) ids from file names: the regex's first group, or its whole match."""
    if pattern is None:
        return None
    regex = re.compile(pattern)
    out = []
    for p in paths:
        found = regex.search(p.name)
        if found is None:
            raise DatasetError(p, f"file name does not match the group pattern {pattern!r}")
        out.append(found.group(1) if found.groups() else found.group(0))
    return np.array(out, dtype=object)


def from_folder(
    path: str | os.PathLike[str], *, group_pattern: str | None = None
) -> ClassificationDataset:
    r"""Class sub-folders (optionally inside ``train/``, ``val/``, ``test/`` folders).

    Args:
        path: the root folder.
        group_pattern: a regular expression that finds the patient id in a file name (its
            first group, or the whole match), so that a patient's images stay on one side of
            the validation split; e.g. ``^(person\d+|IM-\d+|NORMAL2-IM-\d+)`` for the
            Kermany chest X-rays.

    Raises:
        DatasetError: no class folders, a class folder without readable images, or a file
            name the group pattern does not match.
    """
    root = Path(path)
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    split_dirs = {
        d: _SPLIT_ALIASES[d.name.lower()] for d in subdirs if d.name.lower() in _SPLIT_ALIASES
    }
    layout: list[tuple[str, Path]] = []  # (split, class folder)
    if split_dirs and len(split_dirs) == len(subdirs):
        for d, split in split_dirs.items():
            layout += [
                (split, c) for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")
            ]
    else:
        layout = [("train", d) for d in subdirs]
    class_names = sorted({c.name for _, c in layout})
    if len(class_names) < 2:
        raise DatasetError(root, f"needs at least two class folders, found {class_names or 'none'}")
    skipped: list[tuple[str, str]] = []
    paths: list[Path] = []
    labels: list[int] = []
    splits: list[str] = []
    for split, folder in layout:
        files = _image_files(folder, skipped)
        if not files:
            raise DatasetError(folder, "class folder holds no readable images")
        paths += files
        labels += [class_names.index(folder.name)] * len(files)
        splits += [split] * len(files)
    return ClassificationDataset(
        name=root.name,
        class_names=class_names,
        ids=[str(p.relative_to(root)) for p in paths],
        labels=np.array(labels),
        splits=np.array(splits, dtype=object),
        loader=_loader(paths),
        groups=_groups(paths, group_pattern),
        source={"kind": "folder", "path": str(root)},
        skipped=skipped,
        files=paths,
    )


def from_csv(path: str | os.PathLike[str]) -> ClassificationDataset:
    """A CSV manifest ``path,label[,split][,group]`` (paths relative to the CSV).

    Rows whose file does not exist are skipped (recorded in ``skipped``, with a warning).

    Raises:
        DatasetError: missing columns, unknown split names, or no usable rows.
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(p, f"cannot read CSV ({exc})") from exc
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(p, "CSV needs a header with at least the columns path,label")
    multilabel = any("|" in r["label"] for r in rows)
    names = sorted(
        {v.strip() for r in rows for v in r["label"].split("|") if v.strip()},
        key=lambda s: (not s.lstrip("-").isdigit(), int(s) if s.lstrip("-").isdigit() else 0, s),
    )
    skipped: list[tuple[str, str]] = []
    paths: list[Path] = []
    labels: list[Any] = []
    splits: list[str] = []
    groups: list[str] = []
    for n, r in enumerate(rows, start=2):
        file = (
            (p.parent / r["path"]).resolve()
            if not Path(r["path"]).is_absolute()
            else Path(r["path"])
        )
        if not file.exists():
            skipped.append((str(file), f"listed on line {n} of {p.name} but missing"))
            continue
        split = _SPLIT_ALIASES.get((r.get("split") or "train").strip().lower())
        if split is None:
            raise DatasetError(p, f"line {n}: unknown split {r.get('split')!r}; use {SPLITS}")
        values = [v.strip() for v in r["label"].split("|") if v.strip()]
        if not values:
            raise DatasetError(p, f"line {n}: empty label")
        if multilabel:
            vec = np.zeros(len(names), dtype=int)
            vec[[names.index(v) for v in values]] = 1
            labels.append(vec)
        else:
            labels.append(names.index(values[0]))
        paths.append(file)
        splits.append(split)
        groups.append((r.get("group") or "").strip())
    if not paths:
        raise DatasetError(p, f"none of the {len(rows)} listed files exists")
    if skipped:
        log.warning(
            "%s: skipped %d listed file(s) that do not exist: %s%s",
            p,
            len(skipped),
            "; ".join(f"{file} ({why})" for file, why in skipped[:5]),
            "; ..." if len(skipped) > 5 else "",
        )
    has_groups = "group" in rows[0] and any(groups)
    return ClassificationDataset(
        name=p.stem,
        class_names=names,
        ids=[str(f) for f in paths],
        labels=np.array(labels),
        splits=np.array(splits, dtype=object),
        loader=_loader(paths),
        groups=np.array(groups, dtype=object) if has_groups else None,
        source={"kind": "csv", "path": str(p)},
        skipped=skipped,
        files=paths,
    )


def open_dataset(
    spec: str | os.PathLike[str], *, group_pattern: str | None = None
) -> ClassificationDataset:
    """Open a data source: ``.npz`` (MedMNIST), ``.csv`` manifest, or a class-folder tree.

    ``group_pattern`` (class folders only) extracts patient ids from file names.

    Raises:
        DatasetError: the path does not exist or is of no known kind.
    """
    p = Path(spec)
    if not p.exists():
        raise DatasetError(p, "no such file or folder")
    if p.is_dir():
        return from_folder(p, group_pattern=group_pattern)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return from_medmnist(p)
    if suffix == ".csv":
        return from_csv(p)
    raise DatasetError(
        p, "a data set is a MedMNIST .npz, a CSV manifest or a folder of class folders"
    )
