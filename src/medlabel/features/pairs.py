"""Finding (image, mask) pairs for batch feature extraction.

Three layouts: a CSV with columns ``image,mask`` (and optionally ``id``), paths relative to the
CSV; a Medical Segmentation Decathlon folder (``imagesTr/`` and ``labelsTr/``, matched by file
name, ``_0000`` channel suffixes allowed); or a folder with ``images/`` and ``masks/``.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "masks"):
    ...     (root / sub).mkdir()
    ...     _ = (root / sub / "case1.nii.gz").write_bytes(b"")
    >>> [(i, p.name, m.name) for i, p, m in find_pairs(root)]
    [('case1', 'case1.nii.gz', 'case1.nii.gz')]
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from medlabel.features.params import FeatureError
from medlabel.io.formats import full_suffix

__all__ = ["find_pairs"]

_FOLDERS = (
    ("imagesTr", "labelsTr"),
    ("imagesTs", "labelsTs"),
    ("images", "masks"),
    ("images", "labels"),
)


def _stem(path: Path) -> str:
    name = path.name[: len(path.name) - len(full_suffix(path))]
    return re.sub(r"_0000$", "", name)


def find_pairs(source: str | os.PathLike[str]) -> list[tuple[str, Path, Path]]:
    """``(id, image path, mask path)`` for every pair in a CSV or a paired-folder layout.

    Raises:
        FeatureError: unknown layout, missing columns, or images without masks.
    """
    p = Path(source)
    if p.is_file() and p.suffix.lower() == ".csv":
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or not {"image", "mask"} <= set(rows[0]):
            raise FeatureError(p, "pairs CSV needs the columns image,mask (and optionally id)")
        out = []
        for row in rows:
            image, mask = p.parent / row["image"], p.parent / row["mask"]
            out.append((row.get("id") or _stem(image), image, mask))
        return out
    for images_dir, masks_dir in _FOLDERS:
        if (p / images_dir).is_dir() and (p / masks_dir).is_dir():
            masks = {
                _stem(m): m
                for m in (p / masks_dir).iterdir()
                if m.is_file() and not m.name.startswith(".")
            }
            out, missing = [], []
            for image in sorted((p / images_dir).iterdir()):
                if not image.is_file() or image.name.startswith("."):
                    continue
                key = _stem(image)
                if key in masks:
                    out.append((key, image, masks[key]))
                else:
                    missing.append(image.name)
            if missing:
                raise FeatureError(
                    p / masks_dir, f"no mask for {len(missing)} image(s), e.g. {missing[0]}"
                )
            if not out:
                raise FeatureError(p, f"{images_dir}/ holds no images")
            return out
    raise FeatureError(
        p, "expected a CSV (image,mask) or a folder with imagesTr/labelsTr or images/masks"
    )
