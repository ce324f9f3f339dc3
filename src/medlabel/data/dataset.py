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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage

__all__ = ["SPLITS", "ClassificationDataset", "DatasetError", "Task"]

log = logging.getLogger(__name__)

Task = Literal["binary", "multiclass", "multilabel", "ordinal"]
SPLITS = ("train", "val", "test")


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

        Raises:
            DatasetError: a bad fraction, or too few (unseen) training samples to split.
        """
        if self.has_split("val") and not force:
            return self
        if not 0 < fraction < 1:
            raise DatasetError(None, f"validation fraction must be in (0, 1), got {fraction}")
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
        splits = self.splits.copy()
        splits[train[val_pos]] = "val"
        return replace(self, splits=splits)

    def _touches(self, idx: np.ndarray, ids: Collection[str]) -> np.ndarray:
        """Which of the samples ``idx`` are in ``ids``, or share a group with one that is."""
        hit = np.array([self.ids[i] in ids for i in idx], dtype=bool)
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
            loader=lambda j: base(int(idx[j])),
        )

    def summary(self) -> dict[str, Any]:
        """Name, task, classes, counts per split, skipped inputs."""
        return {
            "name": self.name,
            "task": self.task,
            "classes": list(self.class_names),
            "counts": self.counts(),
            "skipped": len(self.skipped),
            "source": self.source,
        }
