"""The plausibility check: does a segmentation look like those its model was trained on?"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io import read_image, write_image
from medlabel.segment.api import open_segmenter
from medlabel.segment.fingerprint import fingerprint_cases
from medlabel.segment.plausibility import (
    Expectations,
    SizeRange,
    entropy_summary,
    expectations,
    implausible,
)

CLASSES = {1: "organ", 2: "lesion"}


def _case(shape: tuple[int, ...], spacing: tuple[float, ...], organ: int, lesion: int):  # type: ignore[no-untyped-def]
    image = MedicalImage(np.zeros(shape, np.float32), spacing=spacing)
    labels = np.zeros(shape, np.uint8).ravel()
    labels[:organ] = 1
    labels[organ : organ + lesion] = 2
    return image, image.with_array(labels.reshape(shape), is_label=True)


def test_fingerprint_records_each_structures_physical_size_per_case() -> None:
    cases = [_case((10, 10, 10), (1.0, 1.0, 2.0), 100, 0), _case((10, 10, 10), (1, 1, 1), 50, 5)]
    fp = fingerprint_cases(cases)
    # mm³: 100 voxels of 2 mm³, then 50 of 1 mm³; the lesion is absent from the first case
    assert fp.class_sizes == {1: [200.0, 50.0], 2: [0.0, 5.0]}
    assert fp.to_dict()["class_sizes"] == fp.class_sizes


def test_physical_expectations_from_the_fingerprint_and_what_they_flag() -> None:
    cases = [_case((20, 30, 40), (1, 1, 1), 1000, 0), _case((25, 30, 40), (1, 1, 1), 2000, 10)]
    meta = {
        "fingerprint": fingerprint_cases(cases).to_dict(),
        "metrics": {"validation": {"structure_entropy": entropy_summary([0.01, 0.03])}},
    }
    exp = expectations(meta, fit="spacing")
    assert exp is not None and exp.measure == "physical" and exp.entropy_max == 0.03
    assert exp.sizes[1] == SizeRange(1000.0, 2000.0, True)
    assert exp.sizes[2] == SizeRange(10.0, 10.0, False)  # not in every case: may be absent
    assert exp.extent_mm == ((20.0, 25.0), (30.0, 30.0), (40.0, 40.0))
    image, labels = _case((20, 30, 40), (1, 1, 1), 1500, 0)
    assert implausible(image, labels, exp, CLASSES, entropy=0.05) == []
    unsized = image.with_array(image.array, metadata={SPACING_UNKNOWN: True})
    assert implausible(unsized, labels, exp, CLASSES) == [
        "the image gives no pixel size, and this model works in millimetres: "
        "1 x 1 x 1 mm per voxel was assumed"
    ]
    # four times the largest organ seen in training; a lesion twice as large is still fine
    image, labels = _case((20, 30, 40), (1, 1, 1), 8001, 20)
    assert implausible(image, labels, exp, CLASSES) == ["organ is 8 mL; in training it was 1-2 mL"]
    image, labels = _case((20, 30, 40), (1, 1, 1), 0, 0)
    assert implausible(image, labels, exp, CLASSES) == [
        "no organ found, though every training image had one"
    ]
    # a field of view twice the largest training image's, in any storage order
    big, labels = _case((40, 30, 80), (1, 1, 1), 1500, 0)
    (found,) = implausible(big, labels, exp, CLASSES)
    assert found.startswith("the image measures 30 x 40 x 80 mm")
    image, labels = _case((20, 30, 40), (1, 1, 1), 1500, 0)
    (found,) = implausible(image, labels, exp, CLASSES, entropy=0.1)
    assert found.startswith("the network hesitates (entropy 0.1 in its structures")
    assert implausible(image, labels, None, CLASSES, entropy=1.0) == []  # nothing recorded


def test_whole_image_models_compare_shares_and_fall_back_on_validation_cases() -> None:
    # an older bundle: no class_sizes, only its validation cases' reference areas (cm²)
    meta = {
        "fingerprint": {"dims": 2, "median_size": [100, 100], "median_spacing": [1.0, 1.0]},
        "plan": {"classes": {"1": "organ", "2": "lesion"}},
        "metrics": {
            "validation_cases": {
                "a": {"organ": {"volume_true_ml": 20.0}, "lesion": {"volume_true_ml": 0.0}},
                "b": {"organ": {"volume_true_ml": 30.0}, "lesion": {"volume_true_ml": 1.0}},
            }
        },
    }
    exp = expectations(meta, fit="size")
    assert exp is not None and exp.measure == "share" and exp.extent_mm is None
    assert exp.sizes[1] == SizeRange(pytest.approx(0.2), pytest.approx(0.3), True)
    # the same share of a 4x larger image with another pixel spacing is fine
    image = MedicalImage(np.zeros((200, 200), np.float32), spacing=(0.2, 0.2))
    labels = np.zeros((200, 200), np.uint8)
    labels[:50] = 1  # 25 % of the image
    assert implausible(image, labels, exp, CLASSES) == []
    labels[:] = 1
    assert implausible(image, labels, exp, CLASSES) == [
        "organ is 100 %; in training it was 20-30 %"
    ]


def test_bundled_hippocampus_model_flags_a_whole_volume_from_the_cli(tmp_path: Path) -> None:
    head = MedicalImage(
        np.random.default_rng(0).normal(100, 20, (120, 160, 140)).astype(np.float32),
        spacing=(1.0, 1.0, 1.2),
    )
    src, out = tmp_path / "head.nii.gz", tmp_path / "mask.nii.gz"
    write_image(head, src)
    result = CliRunner().invoke(
        app, ["segment", str(src), "--model", "mri-hippocampus", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file()  # written all the same: the user asked for this model
    assert "does not look like those mri-hippocampus was trained on" in result.output
    assert "the image measures 140 x 144 x 160 mm" in result.output


def test_implausible_segmentations_lead_the_annotation_review_queue(tmp_path: Path) -> None:
    from medlabel.annotate.job import annotate

    archive = tmp_path / "archive"
    archive.mkdir()
    rng = np.random.default_rng(1)
    volume = MedicalImage(rng.normal(100, 20, (100, 120, 110)).astype(np.float32))
    write_image(volume, archive / "whole.nii.gz")
    out = tmp_path / "out"
    annotate(archive, out, models=["mri-hippocampus"], formats=["nifti"], progress=False)
    with (out / "manifest.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "done" and row["ood"] == "True" and float(row["uncertainty"]) == 1.0
    assert "the image measures" in row["notes"]
    report = (out / "report.html").read_text()
    assert "field of view, structure sizes or the network's entropy far from" in report


@pytest.mark.parametrize(
    ("model", "folder", "mapping"),
    [
        ("mri-hippocampus", "msd-hippocampus", "1=anterior,2=posterior"),
        ("cxr-lungs", "jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart"),
    ],
)
def test_real_images_pass_and_wrong_ones_are_flagged(
    shared_data: Path, model: str, folder: str, mapping: str
) -> None:
    from medlabel.segment.dataset import open_segmentation_dataset

    seg = open_segmenter(model)
    ds = open_segmentation_dataset(shared_data / folder, mapping)
    for i in range(0, len(ds.cases), len(ds.cases) // 6)[:6]:
        image, _ = ds.load(i)
        _, findings, notes = seg.segment_checked(image)
        assert findings == [] and notes == [], ds.cases[i].id
    wrong = {
        "mri-hippocampus": "mri-lesions/brain1_image.nrrd",
        "cxr-lungs": "dicom-samples/chest-ct-slice-0.dcm",
    }[model]
    found = seg.segment_checked(read_image(shared_data / wrong))[1]
    assert found, wrong


def test_expectations_need_something_recorded() -> None:
    assert expectations({}, fit="size") is None
    exp = Expectations("physical", {}, None, None)
    assert implausible(MedicalImage(np.zeros((4, 4), np.float32)), np.ones((4, 4)), exp, {}) == []
