"""predict_source: files, folders of images and class-folder data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.classify.bundle import load_bundle
from medlabel.classify.predict import predict_source
from medlabel.data.dataset import DatasetError


def _radiographs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        Image.fromarray((rng.random((64, 64)) * 255).astype(np.uint8)).save(folder / f"{i}.png")


def test_a_class_folder_set_gives_true_labels_and_an_invalid_one_still_predicts(
    tmp_path: Path,
) -> None:
    bundle = load_bundle("cxr-pneumonia")
    good = tmp_path / "good"
    _radiographs(good / "NORMAL", 2)
    _radiographs(good / "PNEUMONIA", 1)
    rows = predict_source(bundle, good, progress=False)
    assert sorted(r["true_label"] for r in rows) == ["NORMAL", "NORMAL", "PNEUMONIA"]
    # an empty class folder makes no labelled data set; the images are still predicted
    odd = tmp_path / "odd"
    _radiographs(odd / "NORMAL", 2)
    (odd / "PNEUMONIA").mkdir()
    rows = predict_source(bundle, odd, progress=False)
    assert len(rows) == 2 and all(r["label"] and not r.get("true_label") for r in rows)
    with pytest.raises(DatasetError, match="no readable images"):  # a split asked for
        predict_source(bundle, odd, split="train", progress=False)


def test_an_image_of_another_declared_modality_gets_an_error_row(tmp_path: Path) -> None:
    """cxr-pneumonia is made for CR/DX: a CT slice is refused (it was called PNEUMONIA 0.96,
    flagged only as out of distribution), a radiograph and an untagged export are not."""
    from medlabel.errors import MedlabelError
    from medlabel.image import MedicalImage
    from medlabel.io import write_image

    bundle = load_bundle("cxr-pneumonia")
    pixels = np.tile(np.linspace(0, 255, 64), (64, 1)).astype(np.uint8)
    with pytest.raises(MedlabelError, match="made for CR/DX images; this one is CT"):
        bundle.prepare(MedicalImage(pixels, modality="CT"))
    assert bundle.prepare(MedicalImage(pixels, modality="DX")).shape[0] == 1
    write_image(MedicalImage(pixels, modality="CT"), tmp_path / "ct.mha")
    write_image(MedicalImage(pixels), tmp_path / "export.png")
    rows = {Path(r["id"]).name: r for r in predict_source(bundle, tmp_path, progress=False)}
    assert rows["ct.mha"]["error"] == "cxr-pneumonia is made for CR/DX images; this one is CT"
    assert rows["export.png"]["label"] in ("NORMAL", "PNEUMONIA")
