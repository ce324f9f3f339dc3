"""MedMNIST ``.npz`` archives: one file holding train/val/test images and labels.

2D flags store images as ``(N, H, W)`` or ``(N, H, W, 3)``, 3D flags as ``(N, D, H, W)``;
labels are ``(N,)`` or ``(N, K)`` (multi-label and ordinal tasks). MedMNIST images carry no
physical geometry: pixels are laid out 1 apart and marked as having no known size
(:attr:`~medlabel.image.MedicalImage.spacing_known` is ``False``), so areas and volumes are
reported in pixels and voxels, never in made-up millimetres.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> images, labels = np.zeros((2, 28, 28), np.uint8), np.array([[0], [1]])
    >>> np.savez(path, train_images=images, train_labels=labels)
    >>> archive = MedMNISTArchive(path)
    >>> image = archive.image("train", 1)
    >>> archive.splits, archive.count("train"), image.size, image.spacing_known
    (('train',), 2, (28, 28), False)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.errors import ReadError
from medlabel.image import SPACING_UNKNOWN, MedicalImage

__all__ = ["MedMNISTArchive"]

_SPLITS = ("train", "val", "test")


class MedMNISTArchive:
    """Lazy access to a MedMNIST ``.npz`` file (arrays are loaded on first use).

    Args:
        path: the ``.npz`` file.

    Raises:
        ReadError: not an npz file, or no ``<split>_images`` arrays in it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ReadError(self.path, "no such file")
        try:
            npz = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ReadError(self.path, f"not a readable .npz archive ({exc})") from exc
        if not isinstance(npz, np.lib.npyio.NpzFile):
            # np.load also accepts a single-array .npy file whatever its name.
            raise ReadError(self.path, "a single .npy array, not an .npz archive: not MedMNIST")
        self._npz = npz
        keys = set(npz.files)
        self.splits: tuple[str, ...] = tuple(s for s in _SPLITS if f"{s}_images" in keys)
        if not self.splits:
            raise ReadError(
                self.path, "no train_images/val_images/test_images arrays: not MedMNIST"
            )
        self._cache: dict[str, np.ndarray] = {}

    def _get(self, key: str) -> np.ndarray:
        if key not in self._cache:
            try:
                value = self._npz[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                raise ReadError(self.path, f"array {key!r} cannot be read ({exc})") from exc
            if not isinstance(value, np.ndarray):  # NpzFile returns raw bytes for non-.npy members
                raise ReadError(self.path, f"array {key!r} cannot be read (not a .npy array)")
            self._cache[key] = value
        return self._cache[key]

    def _check(self, split: str) -> None:
        if split not in self.splits:
            raise ReadError(self.path, f"no split {split!r}; available: {', '.join(self.splits)}")

    def images(self, split: str) -> np.ndarray:
        """All images of a split."""
        self._check(split)
        return self._get(f"{split}_images")

    def labels(self, split: str) -> np.ndarray:
        """Labels of a split as ``(N,)`` for single-label tasks, ``(N, K)`` for multi-label."""
        self._check(split)
        labels = self._get(f"{split}_labels")
        return labels.reshape(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels

    def count(self, split: str) -> int:
        """Number of images in a split."""
        return int(self.images(split).shape[0])

    @property
    def is_3d(self) -> bool:
        """True for the 3D flags (``(N, D, H, W)`` images)."""
        imgs = self.images(self.splits[0])
        return imgs.ndim == 4 and imgs.shape[-1] not in (3, 4)

    def image(self, split: str, index: int) -> MedicalImage:
        """One image as a :class:`MedicalImage` (identity geometry, spacing 1 and unknown)."""
        imgs = self.images(split)
        if not -len(imgs) <= index < len(imgs):
            raise ReadError(
                self.path, f"index {index} out of range for {split} ({len(imgs)} images)"
            )
        dim = 3 if self.is_3d else 2
        label = self.labels(split)[index]
        meta = {
            "format": "medmnist",
            "split": split,
            "index": int(index),
            "label": label.tolist(),
            SPACING_UNKNOWN: True,  # downsampled crops: the pixel size is lost
        }
        return MedicalImage(np.asarray(imgs[index]), spacing=(1.0,) * dim, metadata=meta)

    def summary(self) -> dict[str, Any]:
        """Split sizes, image shape and label counts."""
        out: dict[str, Any] = {"format": "medmnist", "dims": 3 if self.is_3d else 2, "splits": {}}
        for split in self.splits:
            imgs, labels = self.images(split), self.labels(split)
            entry: dict[str, Any] = {"count": len(imgs), "shape": list(imgs.shape[1:])}
            entry["dtype"] = str(imgs.dtype)
            if labels.ndim == 1:
                values, counts = np.unique(labels, return_counts=True)
                entry["labels"] = {str(v): int(c) for v, c in zip(values, counts, strict=True)}
            else:
                entry["labels_positive"] = labels.sum(axis=0).astype(int).tolist()
            out["splits"][split] = entry
        return out
