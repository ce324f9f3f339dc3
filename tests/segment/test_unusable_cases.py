"""Unusable cases (unreadable files, masks off the image's grid or with undeclared values) are
skipped with their reasons when a segmentation data set is opened, trained on or evaluated."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.data.dataset import DatasetError
from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.segment.card import segmentation_card
from medlabel.segment.dataset import SegmentationDataset, open_segmentation_dataset
from medlabel.segment.train import SegTrainConfig, train_segmenter

from .conftest import chest_pairs

LABELS = "100=disc,200=square"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _spoil(root: Path) -> None:
    """case02: truncated image; case04: mask of another size; case05: a stray mask value."""
    _truncate(root / "images" / "case02.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / "case04.png")
    mask = np.asarray(Image.open(root / "masks" / "case05.png")).copy()
    mask[0, 0] = 77
    Image.fromarray(mask).save(root / "masks" / "case05.png")


def _reasons(ds: SegmentationDataset) -> dict[str, str]:
    return {e["case"]: f"{e['path']}: {e['reason']}" for e in ds.skipped}


def test_opening_skips_unusable_cases_with_reasons(
    png_pairs: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = png_pairs(8)
    _spoil(root)
    with caplog.at_level(logging.WARNING, logger="medlabel.segment.dataset"):
        ds = open_segmentation_dataset(root, LABELS)
    bad = {"case02", "case04", "case05"}
    assert [c.id for c in ds.cases] == [
        f"case{i:02d}" for i in range(8) if f"case{i:02d}" not in bad
    ]
    reasons = _reasons(ds)
    assert ds.source["skipped"]["count"] == 3 and set(reasons) == bad
    assert (
        reasons["case02"]
        == f"{root}/images/case02.png: not a readable image (image file is truncated)"
    )
    assert reasons["case04"].startswith(
        f"{root}/masks/case04.png: mask does not lie on the image grid"
    )
    assert reasons["case05"].startswith(
        f"{root}/masks/case05.png: mask values [77] are not declared"
    )
    for name in ("images/case02.png", "masks/case04.png", "masks/case05.png"):
        assert str(root / name) in caplog.text
    split = ds.with_validation_split(0.4)
    assert not {c.id for c in split.cases} & bad and len(split.indices("val")) == 2
    # a CSV of the same pairs skips the same cases
    lines = ["image,label"] + [f"images/case{i:02d}.png,masks/case{i:02d}.png" for i in range(8)]
    (root / "pairs.csv").write_text("\n".join(lines) + "\n")
    from_csv = open_segmentation_dataset(root / "pairs.csv", LABELS)
    assert set(_reasons(from_csv)) == bad and len(from_csv.cases) == 5


def test_msd_volumes_are_checked_by_their_headers(msd_folder: Path) -> None:
    (msd_folder / "imagesTr" / "blob_001.nii.gz").write_bytes(b"not a NIfTI file" * 64)
    write_image(  # a mask on another grid (the images are 1 x 1 x 2 mm and oblique)
        MedicalImage(np.zeros((12, 24, 24), np.uint8), is_label=True),
        msd_folder / "labelsTr" / "blob_003.nii.gz",
    )
    ds = open_segmentation_dataset(msd_folder)
    assert [c.id for c in ds.cases] == ["blob_000", "blob_002", "blob_004", "blob_005"]
    reasons = _reasons(ds)
    assert reasons["blob_001"].startswith(f"{msd_folder}/imagesTr/blob_001.nii.gz: cannot read")
    assert "mask does not lie on the image grid: spacing (1, 1, 1)" in reasons["blob_003"]


def test_most_masks_off_the_mapping_still_refuse_the_data_set(
    png_pairs: Callable[..., Path],
) -> None:
    root = png_pairs(4)
    with pytest.raises(DatasetError, match=r"4 of 4 masks .* the masks hold \[100, 200\]"):
        open_segmentation_dataset(root, "100=disc")


def test_training_skips_unusable_cases_and_records_them(png_pairs: Callable[..., Path]) -> None:
    root = png_pairs(8)
    _spoil(root)
    ds = open_segmentation_dataset(root, LABELS)
    # spoilt after the check: training finds it when it reads the case, and skips it too
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(root / "masks" / "case07.png")
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=1, iterations_per_epoch=1, width=8)
    trained = train_segmenter(ds, cfg, progress=False)
    skipped = trained.data["skipped"]
    assert skipped["count"] == 4
    assert [e["case"] for e in skipped["cases"]] == ["case02", "case04", "case05", "case07"]
    used = set(trained.data["train_ids"]) | set(trained.data["val_ids"])
    assert used == {"case00", "case01", "case03", "case06"}
    assert trained.data["n_train"] + trained.data["n_val"] == 4
    meta = {
        "name": "demo",
        "plan": trained.plan.to_dict(),
        "medlabel_version": "0",
        "created": "today",
        "data": trained.data,
    }
    card = segmentation_card(meta)
    assert "- Skipped as unusable: 4 cases" in card
    assert f"  - `{root}/images/case02.png`: not a readable image (image file is truncated)" in card


def test_too_few_usable_cases_is_a_clear_error(png_pairs: Callable[..., Path]) -> None:
    root = png_pairs(3)
    _truncate(root / "images" / "case00.png")
    _truncate(root / "images" / "case01.png")
    ds = open_segmentation_dataset(root, LABELS)
    assert len(ds.cases) == 1
    cfg = SegTrainConfig(budget_minutes=30, max_epochs=1, iterations_per_epoch=1, width=8)
    with pytest.raises(
        MedlabelError,
        match=r"0 training and 1 validation case\(s\); 2 case\(s\) were skipped as unusable "
        r"\(.*case00.png: not a readable image \(image file is truncated\)",
    ):
        train_segmenter(ds, cfg, progress=False)
    _truncate(root / "images" / "case02.png")
    with pytest.raises(DatasetError, match="no usable case: all 3 were skipped; 3 case"):
        open_segmentation_dataset(root, LABELS)


def test_evaluation_skips_unusable_cases(tmp_path: Path) -> None:
    from medlabel.segment.api import open_segmenter
    from medlabel.segment.evaluation import evaluate_segmenter

    root = chest_pairs(tmp_path / "cxr", 4)
    _truncate(root / "images" / "c1.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(root / "masks" / "c2.png")
    labels = "150=lung_right,200=lung_left"
    recipe = open_segmenter("cxr-lungs-classical")
    result = evaluate_segmenter(
        recipe, open_segmentation_dataset(root, labels), tmp_path / "rep", progress=False
    )
    assert result["n"] == 2 and result["skipped"]["count"] == 2
    assert [e["case"] for e in result["skipped"]["cases"]] == ["c1", "c2"]
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(metrics["cases"]) == {"c0", "c3"} and metrics["skipped"]["count"] == 2
    assert (
        "2 case(s) of the data set could not be used"
        in (tmp_path / "rep" / "report.html").read_text()
    )
    # a data set opened without the check: the case fails when evaluated, and is noted
    pairs = [(root / "images" / f"c{i}.png", root / "masks" / f"c{i}.png") for i in (0, 2)]
    unchecked = SegmentationDataset.from_pairs(pairs, labels={150: "lung_right", 200: "lung_left"})
    result = evaluate_segmenter(recipe, unchecked, tmp_path / "rep2", progress=False)
    assert result["n"] == 1 and [f["case"] for f in result["failures"]] == ["c2"]
    assert "mask does not lie on the image grid" in result["failures"][0]["error"]
