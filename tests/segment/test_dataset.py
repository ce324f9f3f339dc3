"""Segmentation data sources: layouts, explicit value mappings, splits, bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.data.dataset import DatasetError
from medlabel.errors import GeometryMismatchError
from medlabel.segment.dataset import (
    SegmentationDataset,
    open_segmentation_dataset,
    parse_labels,
)


def test_paired_folders_need_and_apply_an_explicit_mapping(png_pairs: Callable[..., Path]) -> None:
    root = png_pairs(4)
    with pytest.raises(DatasetError, match="--labels 100=name100,200=name200"):
        open_segmentation_dataset(root)
    ds = open_segmentation_dataset(root, "100=disc,200=square")
    assert ds.classes == {1: "disc", 2: "square"} and len(ds.cases) == 4
    _, mask = ds.load(0)
    assert mask is not None and set(np.unique(mask.array)) <= {0, 1, 2}
    raw = np.asarray(Image.open(ds.cases[0].label))
    np.testing.assert_array_equal(mask.array == 1, raw == 100)


def test_undeclared_mask_values_are_named(png_pairs: Callable[..., Path]) -> None:
    # in most masks: the mapping is wrong, so the whole data set is refused on opening
    with pytest.raises(DatasetError, match=r"mask values \[200\] are not declared.*2 of 2"):
        open_segmentation_dataset(png_pairs(2), "100=disc")
    ds = SegmentationDataset.from_pairs(  # unchecked: refused when loaded
        [(png_pairs(2) / "images" / "case00.png", png_pairs(2) / "masks" / "case00.png")],
        labels={100: "disc"},
    )
    with pytest.raises(DatasetError, match=r"mask values \[200\] are not declared"):
        ds.load(0)


def test_msd_layout_reads_dataset_json(msd_folder: Path) -> None:
    ds = open_segmentation_dataset(msd_folder)
    assert ds.classes == {1: "shell", 2: "core"} and ds.modality == "MR"
    assert [c.id for c in ds.cases][:2] == ["blob_000", "blob_001"]
    image, mask = ds.load(0)
    assert mask is not None and mask.spacing == image.spacing == (1.0, 1.0, 2.0)


def test_csv_pairs_with_splits(png_pairs: Callable[..., Path], tmp_path: Path) -> None:
    root = png_pairs(4)
    lines = ["image,label,split"] + [
        f"{root}/images/case{i:02d}.png,{root}/masks/case{i:02d}.png,{split}"
        for i, split in enumerate(["train", "train", "train", "test"])
    ]
    csv = tmp_path / "pairs.csv"
    csv.write_text("\n".join(lines) + "\n")
    ds = open_segmentation_dataset(csv, "100=disc,200=square")
    assert ds.indices("test") == [3]
    split = ds.with_validation_split(0.34, seed=0)
    assert len(split.indices("val")) == 1 and len(split.indices("train")) == 2
    assert split.with_validation_split(0.5) is split  # already has validation cases
    bad = tmp_path / "bad.csv"
    bad.write_text("image,label\nmissing.png,missing.png\n")
    with pytest.raises(DatasetError, match="does not exist"):
        open_segmentation_dataset(bad, "1=x")


def test_fine_tuning_validates_and_folds_only_new_cases(png_pairs: Callable[..., Path]) -> None:
    ds = open_segmentation_dataset(png_pairs(10), "100=disc,200=square")
    seen = {f"case{i:02d}" for i in range(6)}  # what the starting model trained on
    split = ds.with_validation_split(0.5, seed=0, seen=seen)
    val = {split.cases[i].id for i in split.indices("val")}
    assert len(val) == 2 and not val & seen  # half of the 4 new cases
    plain = {c.id for c in ds.with_validation_split(0.5, seed=0).cases if c.split == "val"}
    assert plain & seen  # what the check prevents
    folds = ds.folds(2, seed=0, seen=seen)
    held = [{c.id for c in f.cases if c.split == "val"} for f in folds]
    assert not (held[0] | held[1]) & seen and held[0] | held[1] == {
        f"case{i:02d}" for i in range(6, 10)
    }
    assert all(len(h) == 2 for h in held)
    with pytest.raises(DatasetError, match="new to the model being fine-tuned"):
        ds.folds(5, seen=seen)
    with pytest.raises(DatasetError, match="every training case was used"):
        ds.with_validation_split(0.2, seen={c.id for c in ds.cases})


def test_mask_on_another_grid_is_refused(png_pairs: Callable[..., Path]) -> None:
    root = png_pairs(2)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / "case00.png")
    ds = SegmentationDataset.from_pairs(
        [(root / "images" / "case00.png", root / "masks" / "case00.png")],
        labels={100: "disc", 200: "square"},
    )
    with pytest.raises(GeometryMismatchError):
        ds.load(0)
    # opened as a data set, the case is skipped (tests/segment/test_unusable_cases.py)
    assert [c.id for c in open_segmentation_dataset(root, "100=disc,200=square").cases] == [
        "case01"
    ]


def test_labels_syntax_and_unknown_layout(tmp_path: Path) -> None:
    assert parse_labels("150=lung, 250=heart") == {150: "lung", 250: "heart"}
    for bad in ("150", "x=lung", "0=bg", "1=a,1=b"):
        with pytest.raises(DatasetError):
            parse_labels(bad)
    with pytest.raises(DatasetError, match="not a segmentation data set"):
        open_segmentation_dataset(tmp_path)
