"""Finding (image, mask) pairs for batch feature extraction.

Three layouts: a CSV with columns ``image,mask`` (and optionally ``id``), paths relative to the
CSV; a Medical Segmentation Decathlon folder (``imagesTr/`` and ``labelsTr/``, matched by file
name, ``_0000`` channel suffixes allowed); or a folder with ``images/`` and ``masks/``.

An image whose mask is missing (none with its name in the masks folder, or an empty ``mask``
cell in the CSV) is still a pair: its ``error`` says so and names the path the mask was looked
for at, so that a batch records it and goes on. Ids are unique: an image that several rows
pair with different masks gets the mask's name after its own (``case_tumour``), and an id
that would still repeat gets a number (``case-2``, ``case-3``).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for sub in ("images", "masks"):
    ...     (root / sub).mkdir()
    ...     _ = (root / sub / "case1.nii.gz").write_bytes(b"")
    >>> _ = (root / "images" / "case2.nii.gz").write_bytes(b"")
    >>> [(i, p.name, m.name) for i, p, m, _ in find_pairs(root)]
    [('case1', 'case1.nii.gz', 'case1.nii.gz'), ('case2', 'case2.nii.gz', 'case2.nii.gz')]
    >>> find_pairs(root)[1].error.startswith("no mask found: expected ")
    True
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from medlabel.features.params import FeatureError
from medlabel.io.formats import full_suffix

__all__ = ["Pair", "find_pairs", "unique_ids"]

_FOLDERS = (
    ("imagesTr", "labelsTr"),
    ("imagesTs", "labelsTs"),
    ("images", "masks"),
    ("images", "labels"),
)


class Pair(NamedTuple):
    """One image and its mask.

    Attributes:
        id: unique identifier of the pair (the image's name without extension by default).
        image: the image file.
        mask: the mask file; for a missing mask, where it was looked for.
        error: why the pair cannot be measured (``"no mask found: expected PATH"``), or ``""``.
    """

    id: str
    image: Path
    mask: Path
    error: str = ""


def _stem(path: Path) -> str:
    name = path.name[: len(path.name) - len(full_suffix(path))]
    return re.sub(r"_0000$", "", name)


def unique_ids(ids: list[str]) -> list[str]:
    """The ids with repeats numbered: the second ``a`` becomes ``a-2``, the third ``a-3``
    (skipping ids that are taken).

    Example:
        >>> unique_ids(["a", "b", "a", "a-2", "a"])
        ['a', 'b', 'a-3', 'a-2', 'a-4']
    """
    taken = set(ids)
    seen: set[str] = set()
    out = []
    for name in ids:
        if name in seen:
            k = 2
            while f"{name}-{k}" in taken:
                k += 1
            name = f"{name}-{k}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


def _csv_pairs(p: Path) -> list[Pair]:
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"image", "mask"} <= set(rows[0]):
        raise FeatureError(p, "pairs CSV needs the columns image,mask (and optionally id)")
    found = []
    for row in rows:
        image_cell, mask_cell = (row.get("image") or "").strip(), (row.get("mask") or "").strip()
        image, mask = p.parent / image_cell, p.parent / mask_cell
        error = "" if mask_cell else f"no mask given in {p.name} for {image_cell}"
        found.append((row.get("id") or "", image, mask, error))
    # an image paired with several masks: its rows are told apart by the mask's name
    stems = Counter(_stem(image) for given, image, _, _ in found if not given)
    pairs = []
    for given, image, mask, error in found:
        derived = _stem(image) if stems[_stem(image)] < 2 else f"{_stem(image)}_{_stem(mask)}"
        pairs.append(Pair(given or derived, image, mask, error))
    return pairs


def _folder_pairs(p: Path, images_dir: str, masks_dir: str) -> list[Pair]:
    masks = {
        _stem(m): m for m in (p / masks_dir).iterdir() if m.is_file() and not m.name.startswith(".")
    }
    pairs = []
    for image in sorted((p / images_dir).iterdir()):
        if not image.is_file() or image.name.startswith("."):
            continue
        key = _stem(image)
        if key in masks:
            pairs.append(Pair(key, image, masks[key]))
        else:
            expected = p / masks_dir / f"{key}{full_suffix(image)}"
            pairs.append(Pair(key, image, expected, f"no mask found: expected {expected}"))
    if not pairs:
        raise FeatureError(p, f"{images_dir}/ holds no images")
    return pairs


def find_pairs(source: str | os.PathLike[str]) -> list[Pair]:
    """Every :class:`Pair` in a CSV or a paired-folder layout, with unique ids.

    Images without a mask are included with an ``error`` (see the module's description).

    Raises:
        FeatureError: unknown layout, missing columns, or a folder without images.
    """
    p = Path(source)
    if p.is_file() and p.suffix.lower() == ".csv":
        pairs = _csv_pairs(p)
    else:
        for images_dir, masks_dir in _FOLDERS:
            if (p / images_dir).is_dir() and (p / masks_dir).is_dir():
                pairs = _folder_pairs(p, images_dir, masks_dir)
                break
        else:
            raise FeatureError(
                p, "expected a CSV (image,mask) or a folder with imagesTr/labelsTr or images/masks"
            )
    ids = unique_ids([pair.id for pair in pairs])
    return [pair._replace(id=name) for pair, name in zip(pairs, ids, strict=True)]
