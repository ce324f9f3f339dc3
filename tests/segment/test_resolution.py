"""Images coarser than every training image: a note from segment, annotate and evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io import read_image, write_image
from medlabel.segment.bundle import load_segmentation_bundle
from medlabel.segment.resolution import coarser_than_training

ISO = {"spacings": [[1.0, 1.0, 1.0], [0.9, 0.9, 1.2]], "sizes": [[35, 50, 36], [30, 44, 30]]}


def _volume(spacing: tuple[float, ...], shape: tuple[int, ...] = (12, 40, 30)) -> MedicalImage:
    return MedicalImage(np.zeros(shape, np.float32), spacing=spacing)


def test_spacing_models_note_voxels_coarser_than_every_training_image() -> None:
    target = (1.0, 1.0, 1.0)
    assert coarser_than_training(_volume((1.0, 1.0, 1.0)), ISO, "spacing", target) is None
    assert coarser_than_training(_volume((1.0, 1.0, 1.2)), ISO, "spacing", target) is None
    # header rounding is not a coarser image
    assert coarser_than_training(_volume((1.0, 1.0, 1.21)), ISO, "spacing", target) is None
    thick = coarser_than_training(_volume((1.0, 1.0, 3.0)), ISO, "spacing", target)
    assert thick is not None and thick.startswith("voxels 1 x 1 x 3 mm")
    # storage order does not matter: the thick axis stored first is flagged too
    assert coarser_than_training(_volume((3.0, 1.0, 1.0)), ISO, "spacing", target) is not None
    # a model that resamples to 4 mm anyway loses nothing on a 3 mm scan
    assert coarser_than_training(_volume((1.0, 1.0, 3.0)), ISO, "spacing", (4.0, 4.0, 4.0)) is None
    unknown = MedicalImage(
        np.zeros((12, 40, 30), np.float32),
        spacing=(9.0, 9.0, 9.0),
        metadata={SPACING_UNKNOWN: True},
    )
    assert coarser_than_training(unknown, ISO, "spacing", target) is None
    assert coarser_than_training(_volume((1.0, 1.0, 3.0)), {}, "spacing", target) is None


def test_whole_image_models_note_images_smaller_than_every_training_image() -> None:
    fp = {"sizes": [[224, 224], [256, 240]]}
    small = MedicalImage(np.zeros((64, 80), np.float32))
    why = coarser_than_training(small, fp, "size", (224, 224))
    assert why is not None and why.startswith("80 x 64 pixels, smaller than every training")
    assert coarser_than_training(MedicalImage(np.zeros((224, 224))), fp, "size", (224, 224)) is None
    # smaller than the training images, but still shrunk for a 128-pixel network
    assert coarser_than_training(MedicalImage(np.zeros((200, 200))), fp, "size", (128, 128)) is None
    one_slice = MedicalImage(np.zeros((1, 64, 80), np.float32))
    assert coarser_than_training(one_slice, fp, "size", (224, 224)) is not None


def test_bundled_models_note_coarse_inputs_from_the_cli(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    crop = MedicalImage(rng.normal(100, 20, (12, 50, 35)).astype(np.float32), spacing=(1, 1, 3))
    hippocampus = load_segmentation_bundle("mri-hippocampus")
    _, stats = hippocampus.predict_detailed(crop)
    assert stats["notes"] and "coarser than every training image" in stats["notes"][0]
    fine = MedicalImage(rng.normal(100, 20, (36, 50, 35)).astype(np.float32))
    assert hippocampus.predict_detailed(fine)[1]["notes"] == []
    src, out = tmp_path / "thick.nii.gz", tmp_path / "mask.nii.gz"
    write_image(crop, src)
    result = CliRunner().invoke(
        app, ["segment", str(src), "--model", "mri-hippocampus", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "note: voxels 1 x 1 x 3 mm, coarser than every training image" in result.output
    assert read_image(out).size == crop.size  # the mask is written all the same
    lungs = load_segmentation_bundle("cxr-lungs")
    thumb = MedicalImage(rng.integers(0, 255, (64, 64)).astype(np.uint8))
    ((_, stats),) = lungs.predict_detailed_many([thumb])
    assert "64 x 64 pixels, smaller than every training image" in stats["notes"][0]


def _thinned(path: Path, step: int = 3) -> MedicalImage:
    """A real image (or mask) with only every ``step``-th slice of its longest axis kept: a
    temporary derivative, never committed."""
    source = read_image(path)
    axis = int(np.argmax(source.array.shape))
    picked = np.take(source.array, np.arange(0, source.array.shape[axis], step), axis=axis)
    spacing = list(source.spacing)
    spacing[source.ndim - 1 - axis] *= step  # ITK order is the reverse of array order
    return MedicalImage(np.ascontiguousarray(picked), spacing=tuple(spacing),
                        origin=source.origin, direction=source.direction)  # fmt: skip


def test_annotation_notes_a_coarse_volume_without_marking_it_out_of_distribution(
    shared_data: Path, tmp_path: Path
) -> None:
    """A real hippocampus crop with two of every three slices dropped is noted, while the
    plausibility checks still pass it."""
    thick = _thinned(shared_data / "msd-hippocampus" / "imagesTr" / "hippocampus_001.nii.gz")
    archive = tmp_path / "archive"
    archive.mkdir()
    write_image(thick, archive / "thick.nii.gz")
    from medlabel.annotate.job import annotate

    out = tmp_path / "out"
    annotate(archive, out, models=["mri-hippocampus"], formats=["nifti"], progress=False)
    with (out / "manifest.csv").open() as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "done" and "coarser than every training image" in row["notes"]
    assert row["ood"] != "True"  # less reliable, not meaningless
    detail = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert detail["low_resolution"] is True


def test_evaluation_counts_coarse_cases(shared_data: Path, tmp_path: Path) -> None:
    meta = json.loads(
        (load_segmentation_bundle("mri-hippocampus").path / "bundle.json").read_text()
    )
    unseen = sorted(meta["data"]["val_ids"])[:2]
    source = shared_data / "msd-hippocampus"
    data = tmp_path / "msd"
    for part in ("imagesTr", "labelsTr"):
        (data / part).mkdir(parents=True)
        # the first case as it is (a link), the second thinned to 3 mm slices
        (data / part / f"{unseen[0]}.nii.gz").symlink_to(source / part / f"{unseen[0]}.nii.gz")
        write_image(
            _thinned(source / part / f"{unseen[1]}.nii.gz"), data / part / f"{unseen[1]}.nii.gz"
        )
    result = CliRunner().invoke(
        app, ["evaluate", "--model", "mri-hippocampus", "--data", str(data), "--out",
              str(tmp_path / "eval")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 2 and metrics["low_resolution"]["count"] == 1
    assert list(metrics["low_resolution"]["cases"]) == [unseen[1]]
    assert "1 of these cases are coarser than every image mri-hippocampus" in result.output
    assert (
        "coarser than every image the model trained on"
        in (tmp_path / "eval" / "report.html").read_text()
    )
