"""Which annotation model applies to which image (medlabel.annotate.models)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from medlabel.annotate.job import annotate
from medlabel.annotate.models import open_model
from medlabel.image import MedicalImage
from medlabel.io import read_image, read_label
from medlabel.segment.api import open_segmenter
from medlabel.segment.recipes.ct import chest_phantom


def _one_slice(modality: str | None = "CT") -> MedicalImage:
    """The middle slice of the chest phantom as a one-slice volume, like a single DICOM slice."""
    ct, _ = chest_phantom()
    middle = ct.array.shape[0] // 2
    return ct.with_array(ct.array[middle : middle + 1], modality=modality)


@pytest.mark.parametrize("recipe", ["ct-lungs", "ct-bone", "ct-body"])
def test_3d_recipes_take_a_single_ct_slice_as_segment_does(recipe: str) -> None:
    image = _one_slice()
    for explicit in (True, False):
        assert open_model(recipe, explicit=explicit).skip_reason(image) is None
    mask = open_model(recipe).segment(image).mask
    np.testing.assert_array_equal(mask.array, open_segmenter(recipe).segment(image).array)
    # an untagged slice in Hounsfield units (a DICOM file without its Modality) is CT, even
    # with the field of view's corners padded at -2048; other untagged values are unknown
    untagged = _one_slice(modality=None)
    padded = untagged.array.copy()
    padded[0, :4, :4] = -2048
    untagged = untagged.with_array(padded)
    assert open_model(recipe, explicit=False).skip_reason(untagged) is None
    shifted = untagged.with_array(untagged.array + 2048.0)  # values of an unsigned export
    assert open_model(recipe).skip_reason(shifted) is None
    assert open_model(recipe, explicit=False).skip_reason(shifted) == (
        f"modality unknown; {recipe} is made for CT"
    )


def test_3d_recipes_still_refuse_2d_pictures_and_other_modalities() -> None:
    model = open_model("ct-lungs")
    picture = MedicalImage(np.zeros((32, 32), np.int16), modality="CT")
    assert model.skip_reason(picture) == "ct-lungs takes 3D images; this is 2D"
    assert model.skip_reason(_one_slice("DX")) == "ct-lungs is made for CT; this is DX"


def test_an_untagged_ct_slice_is_not_given_to_chest_xray_models() -> None:
    xray = open_model("cxr-pneumonia", explicit=False)
    assert xray.skip_reason(_one_slice(modality=None)) == (
        "cxr-pneumonia is made for CR/DX; this is CT"
    )
    picture = MedicalImage(np.full((64, 64), 120, np.uint8))  # an untagged PNG export
    assert xray.skip_reason(picture) is None


def test_job_segments_a_single_dicom_ct_slice(ct_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ct_small, folder / "CT_small.dcm")
    out = tmp_path / "out"
    summary = annotate(folder, out, models=["ct-body", "ct-bone"], progress=False)
    assert (summary.done, summary.failed) == (1, 0)
    with (out / "manifest.csv").open() as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    image = read_image(folder / "CT_small.dcm")
    for name in ("ct-body", "ct-bone"):
        assert rows[name]["status"] == "done", rows[name]["error"]
        mask = read_label(out / rows[name]["mask"])
        expected = open_segmenter(name).segment(image)
        assert mask.size == image.size == (128, 128, 1)
        np.testing.assert_array_equal(mask.array, expected.array)
    assert rows["ct-body"]["label"] == "body" and rows["ct-bone"]["label"] == "bone"


def test_a_thresholded_classifier_measures_uncertainty_from_its_threshold(monkeypatch) -> None:
    """cxr-pneumonia decides at its validation threshold (about 0.857), not at 0.5: an image
    whose p_PNEUMONIA sits at the threshold is the least certain, one labelled NORMAL though
    pneumonia is the more probable class says why its confidence is low, and a sure one is sure."""
    model = open_model("cxr-pneumonia")
    bundle = model.impl
    t = float(bundle.threshold)
    assert 0.5 < t < 1
    p1 = np.array([t, 0.80, 0.5, 0.02, 0.999])
    fixed = np.stack([1 - p1, p1], axis=1)
    monkeypatch.setattr(bundle, "predict_with_ood", lambda x, tta=False: (fixed, None))
    image = MedicalImage(np.full((224, 224), 100, np.uint8), spacing=(1, 1))
    results = model.classify([image] * len(p1))
    assert [r.label for r in results] == ["PNEUMONIA", "NORMAL", "NORMAL", "NORMAL", "PNEUMONIA"]
    u = [r.uncertainty for r in results]
    assert u[0] == pytest.approx(1.0) and results[0].extra["margin"] == pytest.approx(0.0)
    assert u[0] > u[1] > u[2] > u[3] and u[4] < 0.1
    assert results[1].confidence == pytest.approx(0.20)  # calibrated, left as it is
    assert "threshold chosen on validation" in results[1].extra["notes"][0]
    assert "notes" not in results[2].extra and "notes" not in results[4].extra


def test_a_ct_holding_nan_fails_with_the_count_instead_of_being_skipped(tmp_path: Path) -> None:
    ct, _ = chest_phantom()
    values = ct.array.astype(np.float32)
    values[3, 10, 10:14] = np.nan
    folder = tmp_path / "in"
    folder.mkdir()
    from medlabel.io import write_image

    write_image(ct.with_array(values, modality=None), folder / "ct.nii.gz")
    out = tmp_path / "out"
    summary = annotate(folder, out, models=None, progress=False)
    with (out / "manifest.csv").open() as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert summary.failed == 1
    assert rows["ct-lungs"]["status"] == "failed"
    assert "NaN or infinite values (4 of" in rows["ct-lungs"]["error"]
