"""The segmentation commands end to end: recipes, training, segmenting, evaluating."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.segment.recipes.ct import chest_phantom

from .conftest import chest_pairs

runner = CliRunner()


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_segment_with_recipe_keeps_geometry(tmp_path: Path) -> None:
    ct, truth = chest_phantom()
    ct = ct.with_array(ct.array, origin=(-120.0, 30.0, 400.0))
    src = tmp_path / "chest.nii.gz"
    write_image(ct, src)
    out, overlay = tmp_path / "lungs.nrrd", tmp_path / "lungs.png"
    result = run("segment", src, "--model", "ct-lungs", "--out", out, "--overlay", overlay)
    assert result.exit_code == 0, result.output
    assert "1=lung_right" in result.output and "mL" in result.output
    assert "--tta" not in result.stderr
    result = run("segment", src, "--model", "ct-lungs", "--out", out, "--tta")
    assert result.exit_code == 0 and "note: --tta ignored: ct-lungs is a recipe" in result.stderr
    ref, got = sitk.ReadImage(str(src)), sitk.ReadImage(str(out))
    assert got.GetSize() == ref.GetSize() and got.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert got.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert got.GetDirection() == pytest.approx(ref.GetDirection())
    assert got.GetPixelID() == sitk.sitkUInt8 and overlay.stat().st_size > 1000
    lungs = sitk.GetArrayFromImage(got)
    assert ((lungs == 1) == (truth == 1)).mean() > 0.99


def test_segment_errors_are_one_line(tmp_path: Path) -> None:
    ct, _ = chest_phantom()
    src = tmp_path / "chest.nii.gz"
    write_image(ct, src)
    result = run("segment", src, "--model", "no-such-model", "--out", tmp_path / "m.nii.gz")
    assert result.exit_code == 1 and "error:" in result.output
    flat = tmp_path / "flat.png"
    write_image(
        ct.with_array(
            ct.array[10].astype("uint8"), spacing=(1, 1), origin=(0, 0), direction=(1, 0, 0, 1)
        ),
        flat,
    )
    result = run("segment", flat, "--model", "ct-lungs", "--out", tmp_path / "m.nii.gz")
    assert result.exit_code == 1 and "works on 3D images" in result.output
    assert result.stderr.startswith(f"error: {flat}: ")  # the input is named
    assert not (tmp_path / "m.nii.gz").exists()
    result = run("segment", src, "--model", "cxr-lungs", "--out", tmp_path / "m.nii.gz")
    assert result.exit_code == 1
    assert result.stderr == f"error: {src}: this model segments 2D images; the input is 3D\n"
    gif = tmp_path / "overlay.gif"  # a picture format it cannot write: refused before any work
    args = ("segment", src, "--model", "ct-body", "--out", tmp_path / "m.nii.gz", "--overlay", gif)
    result = run(*args)
    assert result.exit_code == 1 and "cannot write a picture as .gif" in result.stderr
    assert not (tmp_path / "m.nii.gz").exists() and not gif.exists()
    xray = tmp_path / "xray.png"
    write_image(MedicalImage(np.tile(np.linspace(0, 255, 64), (64, 1)).astype("uint8")), xray)
    same = tmp_path / "same.png"  # the overlay would replace the mask: refused before any work
    result = run(
        "segment", xray, "--model", "cxr-lungs-classical", "--out", same, "--overlay", same
    )
    assert result.exit_code == 1 and "the picture would replace the mask" in result.stderr
    assert not same.exists()
    result = run(
        "segment", src, "--model", "ct-body", "--out", tmp_path / "m.nii.gz", "--overlay", src
    )
    assert result.exit_code == 1 and not (tmp_path / "m.nii.gz").exists()


def test_models_lists_recipes() -> None:
    result = run("models", "--json")
    rows = json.loads(result.output)
    assert {"ct-lungs", "cxr-lungs-classical"} <= {
        r["name"] for r in rows if r["origin"] == "recipe"
    }


@pytest.mark.slow
def test_train_segment_then_segment_and_evaluate(
    png_pairs: Callable[..., Path], tmp_path: Path
) -> None:
    data = png_pairs(12)
    bundle = tmp_path / "bundle"
    result = run(
        "train",
        "segment",
        "--data",
        data,
        "--out",
        bundle,
        "--labels",
        "100=disc,200=square",
        "--budget-minutes",
        "0.2",
        "--width",
        "8",
        "--elastic",
        "1.5",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--mirror",
        "all",
        "--full-res",
        "--optimizer",
        "sgd",
        "--licence",
        "synthetic",
    )
    assert result.exit_code == 0, result.output
    assert "validation Dice" in result.output and (bundle / "model.onnx").is_file()
    record = json.loads((bundle / "bundle.json").read_text())
    assert record["plan"]["network"]["kwargs"]["channels"][0] == 8
    assert record["training"]["augment"]["elastic"] == 1.5
    assert record["training"]["bf16"] is False and record["training"]["device"] == "cpu"
    assert record["plan"]["mirror_axes"] == [0, 1] and record["training"]["mirror"] == "all"
    assert record["plan"]["network"]["kwargs"]["strides"][0] == 1 and record["training"]["full_res"]
    assert record["training"]["optimizer"] == "sgd" and record["training"]["lr"] == 1e-2
    mask = tmp_path / "case00-seg.png"
    result = run("segment", data / "images" / "case00.png", "--model", bundle, "--out", mask)
    assert result.exit_code == 0, result.output
    assert mask.is_file()
    # a PNG gives no pixel size: sizes in pixels, and the user is told, never "cm2"
    assert " px)" in result.output and "cm2" not in result.output
    assert "no pixel size" in result.output
    report = tmp_path / "report"
    result = run(
        "evaluate",
        "--model",
        bundle,
        "--data",
        data,
        "--labels",
        "100=disc,200=square",
        "--out",
        report,
        "--precision",
        "fp32",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["inference"] == "float32"  # what computed the figures is on record
    assert "never trained on" in metrics["cases_evaluated"]  # never the training cases
    assert metrics["trained_on"] == 0 and "warning" not in result.output
    assert "hd95_px" in metrics["summary"]["disc"] and "hd95_mm" not in metrics["summary"]["disc"]
    assert metrics["n"] == 2 and {"disc", "square"} == set(metrics["summary"])  # 20 % of 12
    result = run(
        "evaluate", "--model", bundle, "--data", data, "--labels", "100=disc,200=square",
        "--out", tmp_path / "all", "--split", "all",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    every = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert every["n"] == 12 and every["trained_on"] == 10
    assert "10 of these cases trained" in result.output
    assert "flatter it" in (tmp_path / "all" / "report.html").read_text()
    tuned = tmp_path / "tuned"  # fine-tuning keeps the bundle's plan (width 8, full-res)
    result = run(
        "train", "segment", "--data", data, "--out", tuned, "--labels", "100=disc,200=square",
        "--budget-minutes", "0.1", "--optimizer", "sgd", "--init-from", bundle,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    again = json.loads((tuned / "bundle.json").read_text())
    assert again["plan"]["network"] == record["plan"]["network"]
    assert again["training"]["init_from"] == str(bundle) and again["training"]["lr"] == 1e-3
    html = (report / "report.html").read_text()
    assert "Worst cases" in html and "data:image/png;base64" in html
    assert "HD95 (px)" in html and "HD95 (mm)" not in html
    assert "HD95 mean (px)" in (bundle / "MODEL_CARD.md").read_text()
    # two versions side by side on the same data (here: the same bundle twice)
    compare = tmp_path / "compare"
    result = run(
        "evaluate",
        "--model",
        bundle,
        "--model",
        bundle,
        "--data",
        data,
        "--labels",
        "100=disc,200=square",
        "--out",
        compare,
    )
    assert result.exit_code == 0, result.output
    table = (compare / "comparison.md").read_text().splitlines()
    assert table[0].startswith("| model | n | trained on | Dice disc | Dice square")
    assert table[2].split("|")[3:] == table[3].split("|")[3:]  # same model: same figures
    result = run(
        "train",
        "segment",
        "--data",
        data,
        "--out",
        bundle,
        "--labels",
        "100=disc",
        "--budget-minutes",
        "0.1",
    )
    assert result.exit_code == 1 and "200" in result.output  # undeclared mask value named


def test_evaluate_recipe_on_pairs(tmp_path: Path) -> None:
    # the classical X-ray recipe on a synthetic "radiograph" pair set with lung labels
    root = chest_pairs(tmp_path / "cxr", 3)
    result = run(
        "evaluate",
        "--model",
        "cxr-lungs-classical",
        "--data",
        root,
        "--labels",
        "150=lung_right,200=lung_left",
        "--out",
        tmp_path / "rep",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["summary"]["lung_right"]["dice"]["mean"] > 0.9
    assert metrics["inference"] == "recipe"
    # a recipe has no training data, so nothing is said about the cases' relation to it
    assert metrics["cases_evaluated"] == "all cases (a recipe has no training data)"
    assert "unknown" not in result.output


def test_segment_writes_a_dicom_seg_for_a_dicom_series(mixed_archive: Path, tmp_path: Path) -> None:
    import highdicom as hd
    import pydicom

    series = mixed_archive / "dicom" / "series1"
    out = tmp_path / "lungs.dcm"
    result = run("segment", series, "--model", "ct-lungs", "--out", out)
    assert result.exit_code == 0, result.output
    seg = hd.seg.segread(out)
    sources = {pydicom.dcmread(f).SOPInstanceUID for f in series.iterdir()}
    referenced = {
        ref.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for ref in s.ReferencedInstanceSequence
    }
    assert referenced == sources  # every slice of the series, and only those
    labels = [d.SegmentLabel for d in seg.SegmentSequence]
    assert labels == ["lung_right", "lung_left"]
    algorithm = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "ct-lungs"
    # the same mask through NIfTI: one SEG frame per slice that holds each structure
    nifti = tmp_path / "lungs.nii.gz"
    assert run("segment", series, "--model", "ct-lungs", "--out", nifti).exit_code == 0
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(nifti)))
    assert int(seg.NumberOfFrames) == int((lungs == 1).any(axis=(1, 2)).sum()) + int(
        (lungs == 2).any(axis=(1, 2)).sum()
    )
    # a NIfTI input has no DICOM to reference
    result = run(
        "segment",
        mixed_archive / "ct" / "chest.nii.gz",
        "--model",
        "ct-lungs",
        "--out",
        tmp_path / "x.dcm",
    )
    assert result.exit_code == 1 and "references DICOM images" in result.output
    assert not (tmp_path / "x.dcm").exists()


def test_train_segment_refuses_an_unknown_device_before_reading_data(tmp_path: Path) -> None:
    missing = tmp_path / "no-data-here"
    result = run("train", "segment", "--data", missing, "--out", tmp_path / "b", "--device", "gpu")
    assert result.exit_code == 1 and "unknown device 'gpu'" in result.output
    assert not (tmp_path / "b").exists()


def test_train_segment_refuses_an_unknown_mirror_before_reading_data(tmp_path: Path) -> None:
    missing = tmp_path / "no-data-here"
    result = run("train", "segment", "--data", missing, "--out", tmp_path / "b", "--mirror", "x")
    assert result.exit_code != 0 and "auto, all, none" in result.output
    assert not (tmp_path / "b").exists()


def test_train_segment_refuses_an_unknown_optimizer_before_reading_data(tmp_path: Path) -> None:
    missing = tmp_path / "no-data-here"
    result = run(
        "train", "segment", "--data", missing, "--out", tmp_path / "b", "--optimizer", "adam"
    )
    assert result.exit_code != 0 and "adamw, sgd" in result.output
    assert not (tmp_path / "b").exists()


def test_segment_on_a_device_this_machine_lacks_says_so(tmp_path: Path) -> None:
    import torch

    ct, _ = chest_phantom()
    src, out = tmp_path / "chest.nii.gz", tmp_path / "m.nii.gz"
    write_image(ct, src)
    wrong = {"tpu": "unknown device 'tpu'"}
    if not torch.cuda.is_available():
        wrong["cuda"] = "sees no CUDA GPU"
    for device, why in wrong.items():
        result = run("segment", src, "--model", "mri-hippocampus", "--out", out, "--device", device)
        assert result.exit_code != 0 and why in result.output
        assert not out.exists()


def test_segment_precision_is_chosen_or_refused(tmp_path: Path) -> None:
    from medlabel.io import read_label

    hippocampus = np.zeros((36, 50, 36), np.float32)
    hippocampus[10:26, 15:35, 10:26] = 400.0
    src = tmp_path / "crop.nii.gz"
    write_image(MedicalImage(hippocampus), src)
    masks = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.nii.gz"
        result = run(
            "segment", src, "--model", "mri-hippocampus", "--out", out, "--precision", precision
        )
        assert result.exit_code == 0, result.output
        masks[precision] = read_label(out).array
    assert (masks["fp32"] == masks["bf16"]).mean() > 0.99
    result = run(
        "segment", src, "--model", "mri-hippocampus", "--out", tmp_path / "x.nii.gz",
        "--precision", "fp16",
    )  # fmt: skip
    assert result.exit_code != 0 and "auto, fp32, bf16" in result.output
    assert not (tmp_path / "x.nii.gz").exists()


def test_train_segment_names_the_case_whose_image_holds_nan(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ("imagesTr", "labelsTr"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for i in range(6):
        image = rng.normal(100, 10, (12, 16, 16)).astype(np.float32)
        label = np.zeros(image.shape, np.uint8)
        label[4:8, 4:10, 4:10] = 1
        if i == 3:
            image[0, 0, :2] = np.nan
        write_image(MedicalImage(image), tmp_path / "data" / "imagesTr" / f"c{i}.nii.gz")
        write_image(
            MedicalImage(label, is_label=True), tmp_path / "data" / "labelsTr" / f"c{i}.nii.gz"
        )
    result = run(
        "train", "segment", "--data", tmp_path / "data", "--out", tmp_path / "b",
        "--labels", "1=blob", "--budget-minutes", "0.1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "c3.nii.gz: the image holds NaN or infinite values (2 of 3072 pixels)" in result.output
    assert not (tmp_path / "b").exists()


def test_train_segment_refuses_an_out_it_would_destroy_before_training(
    png_pairs: Callable[[int], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = png_pairs(4)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was read before --out was checked")

    monkeypatch.setattr("medlabel.segment.dataset.open_segmentation_dataset", boom)
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    record = '{"format": "medlabel.bundle", "format_version": 1, "kind": "cnn"}'
    (classifier / "bundle.json").write_text(record)
    keep = tmp_path / "keepdir"
    keep.mkdir()
    (keep / "notes.txt").write_text("important")
    cases = [
        (classifier, "kind 'cnn', not segmentation"),
        (keep, "no bundle.json"),
        (data, "is the training data"),
        (data / "images", "lies inside the training data"),  # an existing sub-folder
        (data / "model", "lies inside the training data"),
    ]
    for out, reason in cases:
        result = run("train", "segment", "--data", data, "--out", out, "--labels", "100=disc")
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {out}: ") and reason in result.stderr
    assert (classifier / "bundle.json").read_text() == record
    assert (keep / "notes.txt").read_text() == "important"
    assert len(list((data / "images").iterdir())) == len(list((data / "masks").iterdir())) == 4
