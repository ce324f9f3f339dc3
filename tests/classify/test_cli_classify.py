"""The classification commands end to end on a tiny class-folder data set."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.image import MedicalImage
from medlabel.io import write_image

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_predict_evaluate_features(blob_folder, tmp_path):
    bundle = tmp_path / "bundle"
    result = run(
        "train",
        "classify",
        "--data",
        blob_folder,
        "--out",
        bundle,
        "--model",
        "compact",
        "--size",
        "16",
        "--epochs",
        "4",
        "--budget-minutes",
        "1",
        "--precision",
        "bf16",
        "--licence",
        "CC0",
    )
    assert result.exit_code == 0, result.output
    assert "1 unreadable image(s) skipped" in result.stdout
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["train_config"]["bf16"] is True
    assert meta["class_names"] == ["abnormal", "normal"]
    assert meta["command"].startswith("medlabel") or meta["command"] is None

    preds = tmp_path / "preds.csv"
    result = run("predict", blob_folder, "--model", bundle, "--out", preds)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(preds.open()))
    assert len(rows) == 41
    broken = [r for r in rows if r["id"].endswith("broken.png")]
    assert broken and broken[0]["error"]
    good = [r for r in rows if not r["error"]]
    assert {"p_abnormal", "p_normal", "confidence", "true_label"} <= set(good[0])
    assert np.mean([r["label"] == r["true_label"] for r in good]) > 0.8

    single = tmp_path / "one.csv"
    png = next((blob_folder / "normal").glob("0*.png"))
    assert run("predict", png, "--model", bundle, "--out", single).exit_code == 0
    assert len(list(csv.DictReader(single.open()))) == 1

    report = tmp_path / "report"
    result = run(
        "evaluate", "--model", bundle, "--data", blob_folder, "--split", "train", "--out", report
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "auc", "f1_macro", "ece", "confusion_matrix", "n"):
        assert key in metrics
    assert metrics["skipped"] and "broken.png" in metrics["skipped"][0]["id"]
    # the folder has no splits, so "train" holds the images the bundle trained on: said so
    assert metrics["trained_on"] == len(meta["data"]["train_ids"]) > 0
    assert any("these figures flatter it" in note for note in metrics["notes"])
    assert "flatter it" in result.output
    html = (report / "report.html").read_text()
    assert html.index("flatter it") < html.index("Headline metrics")  # read before the figures

    deep = tmp_path / "deep.csv"
    result = run("features", png, "--model", bundle, "--out", deep)
    assert result.exit_code == 0, result.output
    header = deep.read_text().splitlines()[0]
    assert "deep_0" in header
    # a folder: every image below it, one row each, the corrupt one with its reason
    many = tmp_path / "many.csv"
    result = run("features", blob_folder, "--model", bundle, "--out", many)
    assert result.exit_code == 0, result.output
    with many.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 41 and [r["id"] for r in rows if r["error"]] == [
        str(blob_folder / "normal" / "broken.png")
    ]


def test_radiomics_features_command(tmp_path):
    values = np.zeros((10, 12, 12), np.int16)
    values[3:7, 3:9, 3:9] = 100
    image = MedicalImage(values + 5, spacing=(1, 1, 2))
    write_image(image, tmp_path / "img.nii.gz")
    write_image(
        image.with_array((values > 0).astype(np.uint8), is_label=True), tmp_path / "mask.nii.gz"
    )
    out = tmp_path / "f.json"
    result = run(
        "features", tmp_path / "img.nii.gz", "--mask", tmp_path / "mask.nii.gz", "--out", out
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert rows[0]["original_firstorder_Maximum"] == 105.0
    assert rows[0]["original_shape_VoxelVolume"] == 4 * 6 * 6 * 2
    assert "no pixel size" not in result.output
    # a PNG export: the same command says its shape features are in pixels
    Image.fromarray((values[4] + 5).astype(np.uint8)).save(tmp_path / "img.png")
    Image.fromarray((values[4] > 0).astype(np.uint8)).save(tmp_path / "mask.png")
    result = run("features", tmp_path / "img.png", "--mask", tmp_path / "mask.png", "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())[0]["original_shape2D_PixelSurface"] == 36
    assert "1 image(s) give no pixel size (e.g. img.png)" in result.stderr


def test_train_errors_are_one_line(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a").mkdir()
    result = run("train", "classify", "--data", tmp_path / "only", "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "two class folders" in result.stderr
    result = run("evaluate", "--model", tmp_path, "--data", tmp_path / "only")
    assert result.exit_code == 1 and "no bundle.json" in result.stderr
    result = run(
        "train",
        "classify",
        "--data",
        tmp_path / "x",
        "--out",
        tmp_path / "b",
        "--precision",
        "half",
    )
    assert result.exit_code == 1 and "auto, bf16 or fp32" in result.stderr
    assert not (tmp_path / "b").exists()


def test_train_fine_tunes_from_a_bundle(blob_folder, tmp_path):
    first, second = tmp_path / "v1", tmp_path / "v2"
    common = ["--data", blob_folder, "--epochs", "1", "--budget-minutes", "1"]
    result = run("train", "classify", "--out", first, "--size", "16", *common)
    assert result.exit_code == 0, result.output
    result = run("train", "classify", "--out", second, "--init-from", first, *common)
    assert result.exit_code == 0, result.output
    v1, v2 = (json.loads((p / "bundle.json").read_text()) for p in (first, second))
    assert v2["architecture"] == v1["architecture"] and v2["input"] == v1["input"]
    tuned, base = v2["train_config"], v1["train_config"]
    assert tuned["init_from"] == str(first) and tuned["lr"] == base["lr"]  # a tenth runs
    assert max(h["lr"] for h in v2["members"][0]["history"]) <= base["lr"] / 10 + 1e-12
    assert f"Fine-tuned from: {first}" in (second / "MODEL_CARD.md").read_text()
    refused = run(
        "train",
        "classify",
        "--out",
        tmp_path / "v3",
        "--init-from",
        first,
        "--model",
        "resnet18",
        *common,
    )
    assert refused.exit_code != 0 and "keeps the bundle's network" in refused.output
    assert not (tmp_path / "v3").exists()


def test_predict_refuses_an_image_with_nan_pixels_and_goes_on(tmp_path):
    """One NaN pixel is named in that row's error, not quietly set to the image's minimum."""
    rng = np.random.default_rng(0)
    good = rng.random((64, 64)).astype(np.float32)
    bad = good.copy()
    bad[3, 4] = np.nan
    Image.fromarray(good).save(tmp_path / "good.tif")
    Image.fromarray(bad).save(tmp_path / "bad.tif")
    out = tmp_path / "preds.csv"
    result = run("predict", tmp_path, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 0, result.output
    rows = {r["id"].split("/")[-1]: r for r in csv.DictReader(out.open())}
    assert rows["good.tif"]["label"] and not rows["good.tif"]["error"]
    assert "NaN or infinite values (1 of 4096 pixels)" in rows["bad.tif"]["error"]
    assert not rows["bad.tif"]["label"]


def test_predict_fails_when_nothing_could_be_predicted(tmp_path):
    """An empty folder is no data set, and a run with no prediction at all exits with 1."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("predict", empty, "--model", "cxr-pneumonia", "--out", tmp_path / "p.csv")
    assert result.exit_code == 1
    assert result.stderr == f"error: {empty}: no images found in this folder or below it\n"
    volume = tmp_path / "ct.nii.gz"
    write_image(MedicalImage(np.zeros((5, 16, 16), np.int16)), volume)
    out = tmp_path / "one.csv"
    result = run("predict", volume, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {volume}: a 2D model takes single images")
    (row,) = csv.DictReader(out.open())  # the CSV still says why
    assert row["error"] and not row["label"]
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("a.tif", "b.tif"):
        Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(bad / name)
    result = run("predict", bad, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 1 and "none of the 2 images could be predicted" in result.stderr


def test_features_fail_when_no_region_could_be_measured(tmp_path):
    values = np.zeros((6, 10, 10), np.int16)
    values[1:5, 2:8, 2:8] = 50
    image = MedicalImage(values + 5, spacing=(1, 1, 2))
    img, mask = tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz"
    write_image(image, img)
    write_image(image.with_array((values > 0).astype(np.uint8), is_label=True), mask)
    out = tmp_path / "f.json"
    result = run("features", img, "--mask", mask, "--label", "3", "--out", out)
    assert result.exit_code == 1
    assert f"error: {img}: label 3 is not in the mask" in result.stderr
    assert json.loads(out.read_text())[0]["error"]  # the output still says why
    other = tmp_path / "other.nii.gz"
    write_image(MedicalImage(np.ones((4, 8, 8), np.uint8), spacing=(2, 2, 2), is_label=True), other)
    result = run("features", img, "--mask", other, "--out", out)
    assert result.exit_code == 1
    assert f"error: {img}: mask does not lie on the image grid" in result.stderr
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not an image")
    result = run("features", garbage, "--mask", mask, "--out", out)
    assert result.exit_code == 1 and f"error: {garbage}: cannot read image" in result.stderr
    # a batch goes on past bad rows, and fails only when no row succeeded
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,mask\nimg.nii.gz,mask.nii.gz\nimg.nii.gz,other.nii.gz\n")
    assert run("features", "--pairs", pairs, "--out", tmp_path / "f.csv").exit_code == 0
    pairs.write_text("image,mask\nimg.nii.gz,other.nii.gz\ngarbage.nii.gz,mask.nii.gz\n")
    result = run("features", "--pairs", pairs, "--out", tmp_path / "f.csv")
    assert result.exit_code == 1
    assert f"error: {pairs}: no features extracted: all 2 row(s) failed" in result.stderr


def test_evaluate_names_the_splits_there_are_and_takes_all(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "cxr"
    for c in ("NORMAL", "PNEUMONIA"):
        (data / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (64, 64)).astype(np.uint8)).save(
                data / c / f"{i}.png"
            )
    result = run("evaluate", "--model", "cxr-pneumonia", "--data", data, "--out", tmp_path / "e")
    assert result.exit_code == 1
    assert f"error: {data}: data set has no 'test' split, only train (8 images)" in result.stderr
    assert "--split train" in result.stderr and "--split all" in result.stderr
    result = run(
        "evaluate", "--model", "cxr-pneumonia", "--data", data, "--split", "all", "--out", tmp_path
    )  # a folder of other files (here the data set) is never written into
    assert result.exit_code == 1 and "not an earlier evaluation" in result.stderr
    assert not (tmp_path / "metrics.json").exists()
    result = run(
        "evaluate",
        "--model",
        "cxr-pneumonia",
        "--data",
        data,
        "--split",
        "all",
        "--out",
        tmp_path / "e",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["n"] == 8 and metrics["split"] == "all"


def test_an_unknown_model_name_lists_those_there_are(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLABEL_MODELS", str(tmp_path / "models"))
    result = run("predict", tmp_path, "--model", "nosuchmodel", "--out", tmp_path / "p.csv")
    assert result.exit_code == 1
    line = result.stderr
    assert line.startswith("error: nosuchmodel: neither a folder nor a known model")
    assert "cxr-pneumonia" in line and "ct-lungs" in line and str(tmp_path / "models") in line
    assert line.count("\n") == 1


def _no_training(monkeypatch):
    """Fail the test if a command reads data or trains: refusals come first."""

    def boom(*args, **kwargs):
        raise AssertionError("the data was read or training started")

    monkeypatch.setattr("medlabel.data.sources.open_dataset", boom)
    monkeypatch.setattr("medlabel.classify.train.train_classifier", boom)


def test_train_refuses_an_out_it_would_destroy_before_training(blob_folder, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    keep = tmp_path / "keepdir"
    keep.mkdir()
    (keep / "notes.txt").write_text("important")
    plain = tmp_path / "f.txt"
    plain.write_text("important")
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "bundle.json").write_text(
        '{"format": "medlabel.bundle", "format_version": 1, "kind": "segmentation"}'
    )
    images = sorted(p.relative_to(blob_folder) for p in blob_folder.rglob("*.png"))
    cases = [
        (keep, "no bundle.json"),
        (plain, "a file, not a bundle folder"),
        (seg, "kind 'segmentation'"),
        (blob_folder, "is the training data"),
        (blob_folder / "normal", "lies inside the training data"),
        (tmp_path, "contains the training data"),
    ]
    for out, reason in cases:
        result = run("train", "classify", "--data", blob_folder, "--out", out, "--epochs", "1")
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {out}: ") and reason in result.stderr
        assert "wrote" not in result.output
    assert (keep / "notes.txt").read_text() == plain.read_text() == "important"
    assert json.loads((seg / "bundle.json").read_text())["kind"] == "segmentation"
    assert sorted(p.relative_to(blob_folder) for p in blob_folder.rglob("*.png")) == images


@pytest.mark.slow
def test_train_fills_an_empty_folder_and_replaces_its_own_bundle(blob_folder, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    args = ("train", "classify", "--data", blob_folder, "--out", out, "--model", "compact")
    quick = ("--size", "16", "--epochs", "1", "--budget-minutes", "1")
    result = run(*args, *quick)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "bundle.json").read_text())["train_config"]["seed"] == 0
    (out / "stale.txt").write_text("left from v1")
    result = run(*args, *quick, "--seed", "1")  # retrain: the bundle is replaced
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["train_config"]["seed"] == 1 and not (out / "stale.txt").exists()
    # a segmentation run may not replace this classifier
    result = run("train", "segment", "--data", blob_folder, "--out", out)
    assert result.exit_code == 1 and "kind 'cnn', not segmentation" in result.stderr
    assert json.loads((out / "bundle.json").read_text()) == meta


@pytest.mark.parametrize(
    "option", [["--ensemble", "0"], ["--epochs", "0"], ["--budget-minutes", "0"], ["--size", "-5"]]
)
def test_training_options_out_of_range_are_refused(tmp_path, option):
    result = run("train", "classify", "--data", tmp_path, "--out", tmp_path / "m", *option)
    assert result.exit_code == 2 and option[0] in result.output
    assert not (tmp_path / "m").exists()
