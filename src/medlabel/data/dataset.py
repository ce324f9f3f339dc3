"""One dataset abstraction for classification: samples, labels, splits, lazy images.

A :class:`ClassificationDataset` holds, per sample, an id, a label (an int, or a 0/1 vector
for multi-label tasks), a split name (``train``, ``val``, ``test``) and optionally a group
(patient) id. Images are loaded on demand through a loader, so a folder of thousands of files
costs nothing until it is used. Sources are built in :mod:`medlabel.data.sources`.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> images = [np.full((8, 8), i, np.uint8) for i in range(10)]
    >>> ds = ClassificationDataset(
    ...     name="toy", class_names=["a", "b"], ids=[f"s{i}" for i in range(10)],
    ...     labels=np.array([0, 1] * 5), splits=np.array(["train"] * 10),
    ...     loader=lambda i: MedicalImage(images[i]))
    >>> ds = ds.with_validation_split(0.2, seed=0)
    >>> len(ds.indices("train")), len(ds.indices("val")), ds.task
    (8, 2, 'binary')
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage

__all__ = ["SKIPPED_LISTED", "SPLITS", "ClassificationDataset", "DatasetError", "Task"]

log = logging.getLogger(__name__)

Task = Literal["binary", "multiclass", "multilabel", "ordinal"]
SPLITS = ("train", "val", "test")
#: Most skipped inputs a data summary (and so a bundle and its model card) lists by name.
SKIPPED_LISTED = 50


class DatasetError(MedlabelError):
    """A data source is empty, inconsistent or asks for something it does not hold."""


@dataclass
class ClassificationDataset:
    """Samples with labels and splits, and a loader that reads sample ``i`` as an image.

    Attributes:
        name: a short name for reports.
        class_names: names of the classes (index = label value).
        ids: a stable id per sample (relative path, or ``split/index`` for MedMNIST).
        labels: ``(N,)`` ints, or ``(N, K)`` 0/1 for multi-label tasks.
        splits: ``(N,)`` split names.
        loader: reads sample ``i``.
        groups: optional ``(N,)`` group ids (patients) kept together when splitting.
        task: inferred from the labels unless given (``ordinal`` must be given).
        source: where the data came from (kind, path, licence) for model cards.
        skipped: inputs found but not usable, as ``(path, reason)``.
        files: optional ``(N,)`` file of each sample (``None`` for MedMNIST), by whose bytes
            a model's training samples are recognised under any name
            (:func:`~medlabel.models.files.was_seen`).
    """

    name: str
    class_names: list[str]
    ids: list[str]
    labels: np.ndarray
    splits: np.ndarray
    loader: Callable[[int], MedicalImage]
    groups: np.ndarray | None = None
    task: Task | None = None
    source: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: list[Path] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        self.splits = np.asarray(self.splits, dtype=object)
        n = len(self.ids)
        if n == 0:
            raise DatasetError(self.source.get("path"), "data set holds no samples")
        if len(self.labels) != n or len(self.splits) != n:
            raise DatasetError(self.source.get("path"), "ids, labels and splits differ in length")
        if self.groups is not None and len(self.groups) != n:
            raise DatasetError(self.source.get("path"), "groups differ in length from ids")
        if self.files is not None and len(self.files) != n:
            raise DatasetError(self.source.get("path"), "files differ in length from ids")
        unknown = set(self.splits.tolist()) - set(SPLITS)
        if unknown:
            raise DatasetError(
                self.source.get("path"), f"unknown split name(s) {sorted(unknown)}; use {SPLITS}"
            )
        k = len(self.class_names)
        if self.labels.ndim == 2:
            if self.labels.shape[1] != k:
                raise DatasetError(
                    self.source.get("path"),
                    f"{self.labels.shape[1]} label columns for {k} class names",
                )
            self.task = self.task or "multilabel"
        else:
            bad = (self.labels < 0) | (self.labels >= k)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise DatasetError(
                    self.source.get("path"),
                    f"label {int(self.labels[first])} of sample {self.ids[first]} is outside "
                    f"0..{k - 1} ({', '.join(self.class_names)})",
                )
            self.task = self.task or ("binary" if k == 2 else "multiclass")

    def __repr__(self) -> str:
        names, sizes = np.unique(self.splits, return_counts=True)
        counts = {str(k): int(v) for k, v in zip(names, sizes, strict=True)}
        return (
            f"ClassificationDataset(name={self.name!r}, task={self.task!r}, "
            f"classes={self.class_names}, n={len(self.ids)}, splits={counts})"
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        """Number of classes (label columns for multi-label tasks)."""
        return len(self.class_names)

    def indices(self, split: str) -> np.ndarray:
        """Indices of the samples in ``split`` (``"all"``: every sample)."""
        if split == "all":
            return np.arange(len(self.ids))
        if split not in SPLITS:
            raise DatasetError(None, f"unknown split {split!r}; use one of {(*SPLITS, 'all')}")
        return np.flatnonzero(self.splits == split)

    def require_split(self, split: str) -> np.ndarray:
        """:meth:`indices` of ``split``, which must hold samples.

        Raises:
            DatasetError: ``split`` is empty; the message names the splits the data set has.

        Example:
            >>> import numpy as np
            >>> ds = ClassificationDataset(
            ...     name="toy", class_names=["a", "b"], ids=["s0", "s1"],
            ...     labels=np.array([0, 1]), splits=np.array(["train"] * 2),
            ...     loader=lambda i: None)
            >>> try:
            ...     ds.require_split("test")
            ... except DatasetError as err:
            ...     print(err.reason.split(": ")[0])
            data set has no 'test' split, only train (2 images)
        """
        idx = self.indices(split)
        if len(idx):
            return idx
        present = [s for s in SPLITS if self.has_split(s)]
        if not present:
            raise DatasetError(self.source.get("path"), "data set holds no images")
        sizes = ", ".join(f"{s} ({len(self.indices(s))} images)" for s in present)
        choose = (
            f"choose it with --split {present[0]}"
            if len(present) == 1
            else "choose one with " + " or ".join(f"--split {s}" for s in present)
        )
        raise DatasetError(
            self.source.get("path"),
            f"data set has no {split!r} split, only {sizes}: {choose}, "
            "or every image with --split all",
        )

    def has_split(self, split: str) -> bool:
        """Whether any sample belongs to ``split``."""
        return bool(np.any(self.splits == split))

    def image(self, i: int) -> MedicalImage:
        """Load sample ``i``."""
        return self.loader(int(i))

    def counts(self) -> dict[str, dict[str, int]]:
        """Samples per split and class (positives per class for multi-label)."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            idx = self.indices(split)
            if not len(idx):
                continue
            lab = self.labels[idx]
            if lab.ndim == 2:
                out[split] = {c: int(v) for c, v in zip(self.class_names, lab.sum(0), strict=True)}
            else:
                out[split] = {c: int((lab == k).sum()) for k, c in enumerate(self.class_names)}
        return out

    def with_validation_split(
        self,
        fraction: float = 0.1,
        *,
        seed: int = 0,
        force: bool = False,
        seen: Collection[str] = (),
    ) -> ClassificationDataset:
        """Carve a stratified validation split out of ``train`` when there is none.

        Deterministic for a given seed. Samples sharing a group (patient) stay on one side
        (``StratifiedGroupKFold``). Returns ``self`` unchanged when ``val`` exists and
        ``force`` is false.

        ``seen`` names the samples a model being fine-tuned was trained on: they (and their
        groups) stay in ``train``, since validating on them would flatter the model, and
        ``fraction`` is taken of the other samples.

        Every class is on both sides: a class with at least 2 training samples (of 2 groups,
        when there are groups) gets at least 1 validation sample, and a class with fewer is
        refused. An existing ``val`` split must hold every class that ``train`` holds.

        Raises:
            DatasetError: a bad fraction, too few (unseen) training samples to split, a class
                too small to be both trained on and validated, a class missing from an
                existing ``val`` split, or groups that cannot be split so that every class
                is on both sides.

        Example:
            >>> import numpy as np
            >>> ds = ClassificationDataset(
            ...     name="toy", class_names=["a", "b", "OTHER"], ids=[str(i) for i in range(9)],
            ...     labels=np.array([0] * 4 + [1] * 4 + [2]), splits=np.array(["train"] * 9),
            ...     loader=lambda i: None)
            >>> try:
            ...     ds.with_validation_split(0.2)
            ... except DatasetError as err:
            ...     print(err.reason.split(": ")[0])
            class 'OTHER' has 1 image
        """
        if self.has_split("val") and not force:
            self._check_validation_split()
            return self
        if not 0 < fraction < 1:
            raise DatasetError(None, f"validation fraction must be in (0, 1), got {fraction}")
        self._refuse_small_classes(np.flatnonzero(np.isin(self.splits, ("train", "val"))))
        train = self.indices("train")
        if seen:
            train = train[~self._touches(train, seen)]
            if len(train) < 2:
                raise DatasetError(
                    self.source.get("path"),
                    f"only {len(train)} training sample(s) are new to the model being "
                    "fine-tuned, too few to validate on: validating on what it was trained on "
                    "would flatter it; add labelled samples or give a validation split",
                )
        if len(train) < 2:
            raise DatasetError(self.source.get("path"), "too few training samples to split")
        # scikit-learn only when a split is carved (it takes about a second to import)
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

        strata = self._strata(train)
        if self.groups is not None:
            n_splits = max(2, round(1 / fraction))
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            with warnings.catch_warnings():  # a rare class: _cover_classes sees to it
                warnings.filterwarnings("ignore", "The least populated class", UserWarning)
                _, val_pos = next(splitter.split(train, strata, self.groups[train]))
        else:
            counts = np.bincount(strata)
            if counts[counts > 0].min() < 2:
                rng = np.random.default_rng(seed)
                val_pos = rng.permutation(len(train))[: max(1, round(fraction * len(train)))]
            else:
                n_val = max(round(fraction * len(train)), int((counts > 0).sum()))
                splitter_s = StratifiedShuffleSplit(1, test_size=n_val, random_state=seed)
                _, val_pos = next(splitter_s.split(train, strata))
        in_val = self.splits == "val"
        in_val[train[val_pos]] = True
        self._cover_classes(train, in_val)
        splits = self.splits.copy()
        splits[in_val] = "val"
        return replace(self, splits=splits)

    def _check_validation_split(self) -> None:
        """Refuse an existing ``val`` split that lacks a class ``train`` holds (single-label)."""
        if self.labels.ndim != 1:
            return
        k = self.num_classes
        train = np.bincount(self.labels[self.indices("train")], minlength=k)
        val = np.bincount(self.labels[self.indices("val")], minlength=k)
        missing = [
            (c, int(n)) for c, n, v in zip(self.class_names, train, val, strict=True) if n and not v
        ]
        if missing:
            which = ", ".join(f"class {c!r} has {n} training image(s)" for c, n in missing)
            raise DatasetError(
                self.source.get("path"),
                f"{which} but none in the 'val' split: every class needs validation images to "
                "be judged on; add some to the 'val' split, or drop it and medlabel carves one",
            )

    def _refuse_small_classes(self, idx: np.ndarray) -> None:
        """Refuse a class of the samples ``idx`` with a single sample (or group): it cannot
        be both trained on and validated (single-label data)."""
        if self.labels.ndim != 1:
            return
        units = self.groups[idx] if self.groups is not None else idx
        small = []
        for k, name in enumerate(self.class_names):
            mine = self.labels[idx] == k
            if len(set(units[mine].tolist())) != 1:
                continue
            n = int(mine.sum())
            small.append(
                f"class {name!r} has 1 image"
                if self.groups is None
                else f"class {name!r} has {n} image(s), all of one group (patient)"
            )
        if small:
            needs = "at least 2" if self.groups is None else "images of at least 2 groups"
            raise DatasetError(
                self.source.get("path"),
                f"{', '.join(small)}: each class needs {needs} (one to train on, one to validate)",
            )

    def _cover_classes(self, pool: np.ndarray, in_val: np.ndarray) -> None:
        """Move samples of ``pool`` (whole groups, when there are groups) between train and
        validation (``in_val``, changed in place) until every class of the training samples
        is on both sides, never taking a side's last sample of a class (single-label data).

        Raises:
            DatasetError: groups holding several classes cannot be split that way.
        """
        if self.labels.ndim != 1 or not len(pool):
            return
        k = self.num_classes
        everyone = np.flatnonzero(np.isin(self.splits, ("train", "val")))
        keys = self.groups[pool] if self.groups is not None else pool
        _, unit_of = np.unique(np.asarray(keys).astype(str), return_inverse=True)
        per_unit = np.zeros((int(unit_of.max()) + 1, k), dtype=int)
        np.add.at(per_unit, (unit_of, self.labels[pool]), 1)
        unit_val = np.zeros(len(per_unit), dtype=bool)
        unit_val[unit_of[in_val[pool]]] = True
        wanted = np.flatnonzero(np.bincount(self.labels[everyone], minlength=k))
        for c in wanted:
            for to_val in (True, False):
                side = np.bincount(self.labels[everyone[in_val[everyone] == to_val]], minlength=k)
                if side[c]:
                    continue
                other = np.bincount(self.labels[everyone[in_val[everyone] != to_val]], minlength=k)
                # a unit may move when the side it leaves keeps every class it holds
                keeps = ~((per_unit > 0) & (per_unit >= other)).any(axis=1)
                movable = (unit_val != to_val) & (per_unit[:, c] > 0) & keeps
                name = self.class_names[c]
                if not per_unit[:, c].any():  # e.g. its samples all trained the model
                    log.warning(
                        "class %r is not %s: none of its samples may move there",
                        name,
                        "validated" if to_val else "trained on",
                    )
                    continue
                if not movable.any():
                    raise DatasetError(
                        self.source.get("path"),
                        f"cannot split the groups (patients) so that class {name!r} is both "
                        "trained on and validated: its groups also hold the only images of "
                        "other classes; add images or give a validation split",
                    )
                u = int(np.argmin(np.where(movable, per_unit.sum(axis=1), np.iinfo(int).max)))
                unit_val[u] = to_val
                in_val[pool[unit_of == u]] = to_val

    def file(self, i: int) -> Path | None:
        """The file of sample ``i``, if it has one."""
        return None if self.files is None else self.files[int(i)]

    def seen_by(self, idx: Sequence[int] | np.ndarray, seen: Collection[str]) -> np.ndarray:
        """Which of the samples ``idx`` a model trained on ``seen`` saw: by id, and for
        :class:`~medlabel.models.files.SampleIds` with digests also by the file's bytes (a
        training image copied under another name or folder).

        Example:
            >>> import numpy as np
            >>> ds = ClassificationDataset("toy", ["a", "b"], ["x/1.png", "x/2.png"],
            ...     np.array([0, 1]), np.array(["train", "train"]), loader=lambda i: None)
            >>> ds.seen_by(np.arange(2), {"x/2.png"}).tolist()
            [False, True]
        """
        from medlabel.models.files import was_seen

        return np.array([was_seen(seen, self.ids[i], self.file(i)) for i in idx], dtype=bool)

    def _touches(self, idx: np.ndarray, ids: Collection[str]) -> np.ndarray:
        """Which of the samples ``idx`` were seen (:meth:`seen_by`), or share a group with
        one that was."""
        hit = self.seen_by(idx, ids)
        if self.groups is not None and hit.any():
            hit = np.isin(self.groups[idx], self.groups[idx][hit])
        return hit

    def _strata(self, idx: np.ndarray) -> np.ndarray:
        lab = self.labels[idx]
        if lab.ndim == 1:
            return lab.astype(int)
        # multi-label: stratify on the rarest positive label of each sample (0 = none)
        freq = lab.sum(0)
        order = np.argsort(freq)
        strata = np.zeros(len(idx), dtype=int)
        for rank, k in enumerate(order[::-1], start=1):
            strata[lab[:, k] > 0] = rank
        return strata

    def with_classes(self, names: Sequence[str]) -> ClassificationDataset:
        """The same samples labelled on another class list that holds all of this one's.

        A model's classes and the classes found in new data (a reviewed batch may lack one)
        then share label values. Multi-label data must name the same classes, in any order:
        a column missing from it would read as "absent" rather than "unknown". A class
        spelt in another case (``normal`` for ``NORMAL``) is matched when that is the only
        name it could be.

        Example:
            >>> import numpy as np
            >>> ds = ClassificationDataset(name="toy", class_names=["b", "c"], ids=["x", "y"],
            ...     labels=np.array([0, 1]), splits=["train", "train"], loader=lambda i: None)
            >>> ds.with_classes(["a", "b", "c"]).labels.tolist()
            [1, 2]
            >>> ds.with_classes(["C", "B"]).labels.tolist()
            [1, 0]

        Raises:
            DatasetError: a class of this data set is not in ``names``.
        """
        names = list(names)
        folded: dict[str, list[str]] = {}
        for name in names:
            folded.setdefault(name.casefold(), []).append(name)
        # a class spelt only in another case ("normal" for "NORMAL") is that class
        mine = [
            c if c in names or len(folded.get(c.casefold(), [])) != 1 else folded[c.casefold()][0]
            for c in self.class_names
        ]
        if len(set(mine)) != len(mine):
            mine = list(self.class_names)
        # single-label data may lack some of ``names``; multi-label data must hold them all
        ours = set(mine)
        unknown = sorted(ours ^ set(names) if self.labels.ndim == 2 else ours - set(names))
        if unknown:
            raise DatasetError(
                self.source.get("path"),
                f"classes {unknown} are not shared with {names} (the data has "
                f"{list(self.class_names)})",
            )
        lut = np.array([names.index(c) for c in mine], dtype=int)
        if self.labels.ndim == 2:
            labels = np.zeros_like(self.labels)
            labels[:, lut] = self.labels
        else:
            labels = lut[self.labels]
        task = self.task if self.task == "ordinal" else None  # otherwise inferred again
        return replace(self, class_names=names, labels=labels, task=task)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ClassificationDataset:
        """A dataset of the given samples (same classes and loader)."""
        idx = np.asarray(indices, dtype=int)
        base = self.loader
        return replace(
            self,
            ids=[self.ids[i] for i in idx],
            labels=self.labels[idx],
            splits=self.splits[idx],
            groups=None if self.groups is None else self.groups[idx],
            files=None if self.files is None else [self.files[i] for i in idx],
            loader=lambda j: base(int(idx[j])),
        )

    def summary(self, failures: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """Name, task, classes, counts per split, skipped inputs.

        ``skipped`` counts the inputs the source could not use (:attr:`skipped`) and
        ``failures``, the ``(id, reason)`` of samples that could not be read when loaded;
        ``skipped_files`` lists the first :data:`SKIPPED_LISTED` as ``{"path", "reason"}``.

        Example:
            >>> import numpy as np
            >>> ds = ClassificationDataset(
            ...     name="toy", class_names=["a", "b"], ids=["x.png", "y.png"],
            ...     labels=np.array([0, 1]), splits=np.array(["train"] * 2),
            ...     loader=lambda i: None, skipped=[("z.png", "listed but missing")])
            >>> s = ds.summary([("y.png", "file is truncated")])
            >>> s["skipped"], s["skipped_files"][1]
            (2, {'path': 'y.png', 'reason': 'file is truncated'})
        """
        every = [*self.skipped, *failures]
        return {
            "name": self.name,
            "task": self.task,
            "classes": list(self.class_names),
            "counts": self.counts(),
            "skipped": len(every),
            "skipped_files": [
                {"path": str(path), "reason": str(reason)}
                for path, reason in every[:SKIPPED_LISTED]
            ],
            "source": self.source,
        }
