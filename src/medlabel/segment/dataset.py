"""Segmentation datasets: image/mask pairs with explicit class values, from three layouts.

* the Medical Segmentation Decathlon layout: ``imagesTr/``, ``labelsTr/`` and an optional
  ``dataset.json`` naming the labels and the modality;
* paired folders ``images/`` and ``masks/`` with the same file names (PNG, NIfTI, ...);
* a CSV manifest ``image,label[,split][,group]`` (paths relative to the CSV).

Mask files may store classes as arbitrary grey values (JSRT: 150, 200, 250). The mapping from
file values to classes is always explicit: from ``dataset.json``, from ``labels=`` given by
the user (``"150=lung_right,200=lung_left,250=heart"``), or, when neither is given, only when
the masks hold the consecutive values ``0..K`` already.

:func:`open_segmentation_dataset` checks every case once (:meth:`SegmentationDataset.checked`):
a case whose image or mask cannot be read, whose mask is off the image's grid or holds values
that are not declared classes is skipped with a warning and recorded in ``source["skipped"]``
(2D images are read whole; 3D files of NIfTI, NRRD or MetaImage by their headers only), so
that unusable cases never reach a training or validation split.

Example:
    >>> ds = SegmentationDataset.from_pairs(
    ...     [("a.nii.gz", "a_seg.nii.gz"), ("b.nii.gz", "b_seg.nii.gz")],
    ...     labels=parse_labels("150=lung,250=heart"))
    >>> ds.classes, ds.value_map
    ({1: 'lung', 2: 'heart'}, {150: 1, 250: 2})
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.data.dataset import DatasetError
from medlabel.data.sources import _SPLIT_ALIASES
from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.io import read_image, read_label
from medlabel.io.formats import READ_FORMATS, detect_format
from medlabel.models.files import was_seen
from medlabel.segment.usable import (
    MAX_SKIPPED_LISTED,
    check_case,
    skip_case,
    skipped_note,
    skipped_record,
)

__all__ = [
    "MAX_SKIPPED_LISTED",
    "SegmentationCase",
    "SegmentationDataset",
    "open_segmentation_dataset",
    "parse_labels",
    "skipped_record",
]

log = logging.getLogger(__name__)

_SPLITS = _SPLIT_ALIASES


def parse_labels(text: str | None) -> dict[int, str] | None:
    """``"150=lung_right,200=lung_left"`` -> ``{150: "lung_right", 200: "lung_left"}``.

    Raises:
        DatasetError: malformed entries, duplicates, or value 0 (background is implicit).
    """
    if text is None or not text.strip():
        return None
    out: dict[int, str] = {}
    for entry in text.split(","):
        value, sep, name = entry.partition("=")
        if not sep or not value.strip().isdigit() or not name.strip():
            raise DatasetError(None, f"labels: {entry!r} is not VALUE=NAME (e.g. 150=lung_right)")
        v = int(value)
        if v == 0 or v in out:
            raise DatasetError(None, f"labels: value {v} is background or given twice")
        out[v] = name.strip()
    return out


@dataclass(frozen=True)
class SegmentationCase:
    """One image, its mask (``None`` for unlabelled cases), split and optional group."""

    id: str
    image: Path
    label: Path | None
    split: str = "train"
    group: str | None = None


@dataclass
class SegmentationDataset:
    """Cases plus the class mapping.

    Attributes:
        name: short name for reports.
        cases: the cases.
        value_map: mask file value -> class index (1..K); 0 is background.
        class_names: class index -> name.
        modality: ``CT``, ``MR``, ``CR``/``DX``... when known (from ``dataset.json`` or files).
        source: where the data came from (kind, path, licence) for model cards.
    """

    name: str
    cases: list[SegmentationCase]
    value_map: dict[int, int]
    class_names: dict[int, str]
    modality: str | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cases:
            raise DatasetError(self.source.get("path"), "data set holds no cases")
        if sorted(self.class_names) != list(range(1, len(self.class_names) + 1)):
            raise ValueError(f"class indices must be 1..K, got {sorted(self.class_names)}")

    @property
    def classes(self) -> dict[int, str]:
        """Class index (1..K) -> name."""
        return dict(self.class_names)

    @classmethod
    def from_pairs(
        cls,
        pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str] | None]],
        labels: dict[int, str] | None = None,
        name: str = "pairs",
        **kwargs: Any,
    ) -> SegmentationDataset:
        """From ``(image, mask)`` paths; ``labels`` maps file values to names."""
        cases = [
            SegmentationCase(_case_id(Path(i)), Path(i), None if m is None else Path(m))
            for i, m in pairs
        ]
        value_map, names = _mapping(labels, cases)
        return cls(name, cases, value_map, names, **kwargs)

    def indices(self, split: str) -> list[int]:
        """Positions of the cases in ``split``."""
        return [i for i, c in enumerate(self.cases) if c.split == split]

    def load(self, i: int) -> tuple[MedicalImage, MedicalImage | None]:
        """Image and class-index mask (uint8, on the image grid) of case ``i``.

        Raises:
            DatasetError: the mask holds values outside the mapping.
            GeometryMismatchError: the mask does not lie on the image grid.
        """
        case = self.cases[i]
        image = read_image(case.image)
        if case.label is None:
            return image, None
        mask = read_label(case.label, reference=image)
        lut_size = max(int(mask.array.max()), max(self.value_map, default=0)) + 1
        lut = np.full(lut_size, 255, np.uint8)
        lut[0] = 0
        for value, index in self.value_map.items():
            lut[value] = index
        mapped = lut[mask.array.astype(np.int64)]
        if (mapped == 255).any():
            bad = sorted(set(np.unique(mask.array[mapped == 255]).tolist()))
            raise DatasetError(case.label, self._undeclared(bad))
        return image, mask.with_array(mapped, metadata={"labels": self.classes})

    def _undeclared(self, values: Sequence[int]) -> str:
        """Why a mask holding ``values`` (not declared classes) is refused."""
        declared = ", ".join(f"{v}={self.class_names[k]}" for v, k in self.value_map.items())
        return f"mask values {list(values)} are not declared classes ({declared})"

    @property
    def skipped(self) -> list[dict[str, str]]:
        """The cases :meth:`checked` skipped (``case``, ``path``, ``reason``; the first
        :data:`MAX_SKIPPED_LISTED`)."""
        return list(self.source.get("skipped", {}).get("cases", []))

    def skipped_note(self) -> str:
        """``""``, or a clause saying how many cases were skipped and why (the first three).

        Example:
            >>> ds = SegmentationDataset.from_pairs([("a.png", "a_m.png")], labels={1: "lung"})
            >>> ds.skipped_note()
            ''
            >>> ds.source["skipped"] = skipped_record([{"path": "b.png", "reason": "truncated"}])
            >>> ds.skipped_note()
            '; 1 case(s) were skipped as unusable (b.png: truncated)'
        """
        return skipped_note(self.source.get("skipped"))

    def checked(self) -> SegmentationDataset:
        """This data set less the cases that cannot be used, each skipped with a warning.

        A case is skipped when its image or mask cannot be read, its mask does not lie on the
        image's grid, or its mask holds values that are not declared classes. 2D images and
        masks are read whole; NIfTI, NRRD and MetaImage files only by their headers (their
        voxels are read, and checked, when training loads them). The skipped cases, with their
        file and reason, go to ``source["skipped"]`` (see :func:`skipped_record`).

        Raises:
            DatasetError: most masks hold undeclared values (the class mapping, not the
                cases, is wrong), or no case is usable.

        Example:
            >>> import tempfile
            >>> from PIL import Image
            >>> d = Path(tempfile.mkdtemp())
            >>> for n, side in (("a", 8), ("b", 8), ("c", 6)):
            ...     Image.fromarray(np.zeros((8, 8), np.uint8)).save(d / f"{n}.png")
            ...     Image.fromarray(np.full((side, side), 150, np.uint8)).save(d / f"{n}_m.png")
            >>> ds = SegmentationDataset.from_pairs(
            ...     [(d / f"{n}.png", d / f"{n}_m.png") for n in "abc"], labels={150: "lung"})
            >>> ok = ds.checked()
            >>> [c.id for c in ok.cases], ok.source["skipped"]["count"]
            (['a', 'b'], 1)
            >>> ok.skipped[0]["reason"].split(":")[0]
            'mask does not lie on the image grid'
        """
        usable: list[SegmentationCase] = []
        skipped: list[dict[str, str]] = []
        stray: list[tuple[SegmentationCase, list[int]]] = []  # masks with undeclared values
        seen: set[int] = set()  # every value of the masks read whole
        n_read = 0  # masks read whole
        for case in self.cases:
            try:
                values = check_case(case)
            except MedlabelError as err:
                skipped.append(skip_case(case, err))
                continue
            if values is not None:
                n_read += 1
                seen |= values
                bad = sorted(values - set(self.value_map) - {0})
                if bad:
                    stray.append((case, bad))
                    continue
            usable.append(case)
        if stray and 2 * len(stray) > n_read:
            # most masks disagree with the mapping: the mapping is wrong, not the cases
            case, bad = stray[0]
            raise DatasetError(
                case.label,
                f"{self._undeclared(bad)}, and {len(stray)} of {n_read} masks hold values that "
                f"are not declared; the masks hold {sorted(seen - {0})}: say which class each "
                "value is with --labels VALUE=NAME,...",
            )
        for case, bad in stray:
            skipped.append(skip_case(case, DatasetError(case.label, self._undeclared(bad))))
        if not skipped:
            return self
        if not usable:
            raise DatasetError(
                self.source.get("path"),
                f"no usable case: all {len(self.cases)} were skipped"
                + skipped_note(skipped_record(skipped)),
            )
        return replace(
            self,
            cases=usable,
            source={**self.source, "skipped": skipped_record(skipped, self.source.get("skipped"))},
        )

    def _fresh_keys(self, seen: Collection[str]) -> list[str]:
        """Sorted split keys (group, else id) of the training cases, less those of ``seen``."""
        train = [self.cases[i] for i in self.indices("train")]
        used = {c.group or c.id for c in train if was_seen(seen, c.id, c.image)}
        return sorted({c.group or c.id for c in train} - used)

    def folds(
        self, k: int, seed: int = 0, *, seen: Collection[str] = ()
    ) -> list[SegmentationDataset]:
        """``k`` copies of the data set, copy ``i`` with fold ``i`` of the training cases (whole
        groups) as ``val``; other splits (``test``) are untouched. Cases in ``seen`` (those a
        model being fine-tuned was trained on) stay in training in every copy.

        Raises:
            DatasetError: fewer (unseen) training groups than folds.
        """
        keys = self._fresh_keys(seen)
        if k < 2 or len(keys) < k:
            raise DatasetError(
                self.source.get("path"),
                f"cannot make {k} folds of {len(keys)} cases"
                + (" new to the model being fine-tuned" if seen else ""),
            )
        order = np.random.default_rng(seed).permutation(len(keys))
        fold_of = {keys[j]: n % k for n, j in enumerate(order)}
        out = []
        for f in range(k):
            cases = [
                replace(c, split="val")
                if c.split == "train" and fold_of.get(c.group or c.id) == f
                else c
                for c in self.cases
            ]
            out.append(replace(self, cases=cases))
        return out

    def with_validation_split(
        self, fraction: float = 0.2, seed: int = 0, *, seen: Collection[str] = ()
    ) -> SegmentationDataset:
        """Move a deterministic ``fraction`` of the training cases (whole groups) to ``val``.

        A data set that already has validation cases is returned unchanged. Cases in ``seen``
        (those a model being fine-tuned was trained on) stay in training, since validating on
        them would flatter it; ``fraction`` is then taken of the other cases.

        Raises:
            DatasetError: no training case is new to the model being fine-tuned.
        """
        if self.indices("val"):
            return self
        keys = self._fresh_keys(seen)
        if seen and not keys:
            raise DatasetError(
                self.source.get("path"),
                "every training case was used to train the model being fine-tuned, and "
                "validating on them would flatter it: add labelled cases or a validation split",
            )
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(keys))
        n_val = max(1, round(fraction * len(keys)))
        val_keys = {keys[k] for k in order[:n_val]}
        cases = [
            replace(c, split="val") if c.split == "train" and (c.group or c.id) in val_keys else c
            for c in self.cases
        ]
        return replace(self, cases=cases)


def _case_id(path: Path) -> str:
    name = path.name
    for suffix in sorted(READ_FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _mapping(
    labels: dict[int, str] | None, cases: Sequence[SegmentationCase], probe: int = 5
) -> tuple[dict[int, int], dict[int, str]]:
    if labels:
        value_map = {v: k for k, v in enumerate(sorted(labels), start=1)}
        return value_map, {value_map[v]: labels[v] for v in sorted(labels)}
    values: set[int] = set()
    probed = 0
    for case in [c for c in cases if c.label is not None]:
        if probed == probe:
            break
        try:
            values |= set(np.unique(read_label(case.label).array).tolist())  # type: ignore[arg-type]
        except MedlabelError:
            continue  # an unreadable mask is skipped when the data set is checked
        probed += 1
    values.discard(0)
    if not values:
        raise DatasetError(None, "the masks probed are empty; give the classes with --labels")
    if sorted(values) != list(range(1, max(values) + 1)):
        raise DatasetError(
            cases[0].label,
            f"masks hold the values {sorted(values)}; say which class each value is, e.g. "
            f"--labels {','.join(f'{v}=name{v}' for v in sorted(values))}",
        )
    return {v: v for v in values}, {v: f"label_{v}" for v in values}


def _msd(folder: Path, labels: dict[int, str] | None) -> SegmentationDataset:
    meta: dict[str, Any] = {}
    if (folder / "dataset.json").is_file():
        try:
            meta = json.loads((folder / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(folder / "dataset.json", f"unreadable ({exc})") from exc
    if labels is None and isinstance(meta.get("labels"), dict):
        raw = meta["labels"]
        pairs = (
            [(int(v), k) for k, v in raw.items()]
            if all(isinstance(v, int) for v in raw.values())
            else [(int(k), v) for k, v in raw.items()]
        )
        labels = {v: str(n) for v, n in pairs if v != 0}
    modality = None
    mods = meta.get("modality") or meta.get("channel_names") or {}
    if isinstance(mods, dict) and mods:
        first = str(next(iter(mods.values()))).upper()
        modality = (
            "CT"
            if first == "CT"
            else "MR"
            if first.startswith(("MR", "T1", "T2", "FLAIR", "ADC"))
            else None
        )
    cases = []
    for image in sorted((folder / "imagesTr").iterdir()):
        if image.name.startswith(".") or detect_format(image) is None:
            continue
        cid = _case_id(image)
        if cid.endswith("_0000"):  # nnU-Net v2 channel suffix
            cid = cid[:-5]
        label = next((p for p in (folder / "labelsTr").glob(cid + ".*")), None)
        if label is None:
            log.warning("%s has no label in labelsTr; skipped", image)
            continue
        cases.append(SegmentationCase(cid, image, label))
    value_map, names = _mapping(labels, cases)
    return SegmentationDataset(
        folder.name, cases, value_map, names, modality, {"kind": "msd", "path": str(folder)}
    )


def _paired(folder: Path, labels: dict[int, str] | None) -> SegmentationDataset:
    masks = {_case_id(p): p for p in (folder / "masks").iterdir() if detect_format(p)}
    cases = []
    for image in sorted((folder / "images").iterdir()):
        if detect_format(image) is None:
            continue
        cid = _case_id(image)
        if cid in masks:
            cases.append(SegmentationCase(cid, image, masks[cid]))
        else:
            log.warning("%s has no mask in masks/; skipped", image)
    if not cases:
        raise DatasetError(folder, "no image in images/ has a mask of the same name in masks/")
    value_map, names = _mapping(labels, cases)
    return SegmentationDataset(
        folder.name, cases, value_map, names, None, {"kind": "paired-folders", "path": str(folder)}
    )


def _csv(path: Path, labels: dict[int, str] | None) -> SegmentationDataset:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(path, f"cannot read CSV ({exc})") from exc
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise DatasetError(path, "CSV needs a header with at least the columns image,label")
    cases = []
    for n, row in enumerate(rows, start=2):
        image = (path.parent / row["image"]).resolve()
        label = (path.parent / row["label"]).resolve() if row["label"].strip() else None
        split = _SPLITS.get((row.get("split") or "train").strip().lower())
        if split is None:
            raise DatasetError(path, f"line {n}: unknown split {row.get('split')!r}")
        for f in (image, label):
            if f is not None and not f.exists():
                raise DatasetError(path, f"line {n}: {f} does not exist")
        cases.append(
            SegmentationCase(
                _case_id(image), image, label, split, (row.get("group") or "").strip() or None
            )
        )
    value_map, names = _mapping(labels, cases)
    return SegmentationDataset(
        path.stem, cases, value_map, names, None, {"kind": "csv", "path": str(path)}
    )


def open_segmentation_dataset(
    path: str | os.PathLike[str], labels: str | dict[int, str] | None = None
) -> SegmentationDataset:
    """Open an MSD folder, paired ``images/``+``masks/`` folders or a CSV of pairs.

    Args:
        path: the folder or CSV.
        labels: file value -> class name, as a dict or ``"150=lung_right,250=heart"``.

    Every case is checked once (:meth:`SegmentationDataset.checked`): those that cannot be
    used are skipped with a warning and recorded in ``source["skipped"]``.

    Raises:
        DatasetError: unknown layout, no (usable) cases, masks whose values need a mapping, or
            most masks holding values that are not declared classes.
    """
    p = Path(path)
    mapping = parse_labels(labels) if isinstance(labels, str) or labels is None else labels
    if p.is_file() and p.suffix.lower() == ".csv":
        return _csv(p, mapping).checked()
    if (p / "imagesTr").is_dir() and (p / "labelsTr").is_dir():
        return _msd(p, mapping).checked()
    if (p / "images").is_dir() and (p / "masks").is_dir():
        return _paired(p, mapping).checked()
    raise DatasetError(
        p, "not a segmentation data set: expected imagesTr/+labelsTr/, images/+masks/, or a CSV"
    )
