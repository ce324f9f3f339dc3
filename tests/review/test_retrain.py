"""From review back to training: reviewed labels become a training set for a new bundle."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medlabel.annotate.job import annotate
from medlabel.cli import app
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.models import resolve_model
from medlabel.review.export import export_reviewed
from medlabel.review.store import open_store


def test_train_classify_from_review(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    archive = tmp_path / "archive"
    truth = {}
    for k in range(16):
        bright = k % 2 == 0
        img = rng.normal(170 if bright else 70, 20, (40, 40)).clip(0, 255).astype(np.uint8)
        name = f"img{k:02d}.png"
        write_image(MedicalImage(img), archive / name)
        truth[name] = "PNEUMONIA" if bright else "NORMAL"
    job = tmp_path / "job"
    annotate(archive, job, models=["cxr-pneumonia"], progress=False)
    store = open_store(job)
    store.import_job(job)
    store.add_user("ana", "reviewer", "long enough pw")
    for r in store.predictions("pending"):
        right = truth[r["source"]]
        if r["label"] == right:
            store.decide(r["item"], r["model"], "accepted", "ana")
        else:
            store.decide(r["item"], r["model"], "corrected", "ana", label=right)
    export = export_reviewed(job, "cxr-pneumonia")
    with export.path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and {Path(r["path"]).name: r["label"] for r in rows} == truth
    reviewed = ["train", "classify", "--from-review", str(job), "--review-model", "cxr-pneumonia"]
    reviewed += ["--budget-minutes", "0.3"]
    out = tmp_path / "retrained"
    result = CliRunner().invoke(
        app,
        [*reviewed, "--out", str(out), "--model", "compact", "--size", "28", "--epochs", "2"],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["class_names"] == ["NORMAL", "PNEUMONIA"]
    tuned = tmp_path / "tuned"
    result = CliRunner().invoke(
        app,
        [*reviewed, "--init-from", "cxr-pneumonia", "--out", str(tuned), "--epochs", "1"],
    )
    assert result.exit_code == 0, result.output
    shipped = json.loads((resolve_model("cxr-pneumonia") / "bundle.json").read_text())
    meta = json.loads((tuned / "bundle.json").read_text())
    assert meta["architecture"] == shipped["architecture"] and meta["input"] == shipped["input"]
    assert "Fine-tuned from: cxr-pneumonia" in (tuned / "MODEL_CARD.md").read_text()
    missing = CliRunner().invoke(app, ["train", "classify", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "--from-review" in missing.output
    no_model = CliRunner().invoke(
        app, ["train", "classify", "--from-review", str(job), "--out", str(tmp_path / "y")]
    )
    assert no_model.exit_code == 1 and "--review-model" in no_model.output


def test_train_segment_from_review_fine_tunes_the_reviewed_model(tmp_path: Path) -> None:
    from medlabel.segment.bundle import load_segmentation_bundle

    rng = np.random.default_rng(1)
    archive = tmp_path / "archive"
    yy, xx = np.mgrid[:96, :96]
    for k in range(6):  # two dark fields in a bright frame, as a chest radiograph has
        img = np.full((96, 96), 200.0)
        img[(((yy - 50) / 30) ** 2 + ((xx - 28 - k) / 14) ** 2) < 1] = 60
        img[(((yy - 50) / 30) ** 2 + ((xx - 68 + k) / 14) ** 2) < 1] = 60
        noisy = (img + rng.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
        write_image(MedicalImage(noisy), archive / f"cxr{k}.png")
    job = tmp_path / "job"
    annotate(archive, job, models=["cxr-lungs"], formats=["nifti"], progress=False)
    store = open_store(job)
    store.import_job(job)
    store.add_user("ana", "reviewer", "long enough pw")
    for r in store.predictions("pending"):
        store.decide(r["item"], r["model"], "accepted", "ana")
    out = tmp_path / "lungs-v2"
    args = ["train", "segment", "--from-review", str(job), "--review-model", "cxr-lungs"]
    args += ["--out", str(out), "--budget-minutes", "0.1", "--init-from", "cxr-lungs"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "bundle.json").read_text())
    shipped = load_segmentation_bundle("cxr-lungs")
    assert meta["plan"]["network"] == shipped.plan.network
    assert meta["training"]["init_from"] == "cxr-lungs" and meta["data"]["n_train"] >= 4
    assert "Fine-tuned from: cxr-lungs" in (out / "MODEL_CARD.md").read_text()
