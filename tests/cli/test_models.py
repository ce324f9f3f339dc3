"""predict and evaluate never overwrite what their --out does not own; features reads every
image it is given and checks its --out first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medlabel.cli import app
from medlabel.cli.models import _check_report_folder

runner = CliRunner()


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_evaluate_refuses_a_job_folder_and_other_files(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.jsonl").write_text('{"item": 1}\n')
    (job / "report.html").write_text("<html>the job's report</html>")
    result = run("evaluate", "--model", "cxr-pneumonia", "--data", tmp_path, "--out", job)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {job}: holds an annotation job (manifest.jsonl)")
    assert (job / "report.html").read_text() == "<html>the job's report</html>"
    assert sorted(p.name for p in job.iterdir()) == ["manifest.jsonl", "report.html"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("important")
    result = run("evaluate", "--model", "cxr-pneumonia", "--data", tmp_path, "--out", other)
    assert result.exit_code == 1 and "not an earlier evaluation" in result.stderr
    assert [p.name for p in other.iterdir()] == ["notes.txt"]

    plain = tmp_path / "f.txt"
    plain.write_text("important")
    result = run("evaluate", "--model", "cxr-pneumonia", "--data", tmp_path, "--out", plain)
    assert result.exit_code == 1 and "--out is a file" in result.stderr
    assert plain.read_text() == "important"


def test_evaluate_may_write_new_empty_and_earlier_evaluation_folders(tmp_path: Path) -> None:
    _check_report_folder(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    _check_report_folder(tmp_path / "empty")
    for name in ("metrics.json", "comparison.md"):
        earlier = tmp_path / name.split(".")[0]
        earlier.mkdir()
        (earlier / name).write_text("{}")
        (earlier / "report.html").write_text("<html></html>")
        _check_report_folder(earlier)


def test_predict_to_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "existing_dir"
    folder.mkdir()
    (folder / "keep.csv").write_text("id\n")
    result = run("predict", tmp_path, "--model", "cxr-pneumonia", "--out", folder)
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {folder}: --out is a folder; give a .csv file path\n"
    assert [p.name for p in folder.iterdir()] == ["keep.csv"]


def test_a_comparison_shows_which_models_trained_on_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlabel.cli import models as cli_models

    figures = {
        "a": (24, {"accuracy": 1.0, "AUC": 1.0}, 21),
        "b": (24, {"accuracy": 0.9, "AUC": 0.9}, 0),
    }
    monkeypatch.setattr(cli_models, "_is_segmenter", lambda name: False)
    monkeypatch.setattr(cli_models, "_evaluate_one", lambda name, *args: figures[name])
    out = tmp_path / "compare"
    result = run("evaluate", "--model", "a", "--model", "b", "--data", tmp_path, "--out", out)
    assert result.exit_code == 0, result.output
    table = (out / "comparison.md").read_text().splitlines()
    assert table[0] == "| model | n | trained on | accuracy | AUC |"
    assert table[2] == "| a | 24 | 21 | 1.0000 | 1.0000 |" and table[3].startswith("| b | 24 | 0 |")
    assert table[-1].startswith("Warning: a trained on some of these images")


def test_a_comparison_of_a_classifier_and_a_segmenter_is_refused_up_front(
    tmp_path: Path,
) -> None:
    out = tmp_path / "mixed"
    result = run(
        "evaluate",
        "--model",
        "cxr-pneumonia",
        "--model",
        "ct-lungs",
        "--data",
        tmp_path,
        "--out",
        out,
    )
    assert result.exit_code == 1 and "one task" in result.stderr
    assert not out.exists()


# --------------------------------------------------------------------------- features


def _volume_case(root: Path, name: str, *, with_mask: bool = True) -> None:
    import numpy as np

    from medlabel.image import MedicalImage
    from medlabel.io import write_image

    values = np.zeros((6, 10, 10), np.int16)
    values[1:5, 2:8, 2:8] = 50 + len(name)
    image = MedicalImage(values + 5, spacing=(1, 1, 2))
    write_image(image, root / "imagesTr" / f"{name}.nii.gz")
    if with_mask:
        mask = image.with_array((values > 0).astype(np.uint8), is_label=True)
        write_image(mask, root / "labelsTr" / f"{name}.nii.gz")


_FIRST_ORDER = '{"featureClass": {"firstorder": ["Mean"]}}'


def test_features_pairs_go_on_past_an_image_without_its_mask(tmp_path: Path) -> None:
    import csv

    root = tmp_path / "Task04"
    for name, with_mask in (("case_1", True), ("case_2", False), ("case_3", True)):
        _volume_case(root, name, with_mask=with_mask)
    params = tmp_path / "params.json"
    params.write_text(_FIRST_ORDER)
    out = tmp_path / "hip.csv"
    result = run("features", "--pairs", root, "--params", params, "--out", out)
    assert result.exit_code == 0, result.output
    assert "3 row(s), 1 failed" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["case_1", "case_2", "case_3"]
    expected = root / "labelsTr" / "case_2.nii.gz"
    assert rows[1]["error"].endswith(f"no mask found: expected {expected}")
    assert rows[0]["original_firstorder_Mean"] and rows[2]["original_firstorder_Mean"]

    for name in ("case_1", "case_3"):  # no mask at all: nothing succeeded
        (root / "labelsTr" / f"{name}.nii.gz").unlink()
    result = run("features", "--pairs", root, "--params", params, "--out", out)
    assert result.exit_code == 1
    assert "no features extracted: all 3 row(s) failed" in result.stderr
    assert all("no mask found" in r["error"] for r in csv.DictReader(out.open()))


def test_features_pairs_ids_are_unique(tmp_path: Path) -> None:
    import csv

    root = tmp_path / "cases"
    _volume_case(root, "brain1")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "image,mask\n"
        "cases/imagesTr/brain1.nii.gz,cases/labelsTr/brain1.nii.gz\n"
        "cases/imagesTr/brain1.nii.gz,cases/labelsTr/brain1.nii.gz\n"
    )
    params = tmp_path / "params.json"
    params.write_text(_FIRST_ORDER)
    out = tmp_path / "f.csv"
    result = run("features", "--pairs", pairs, "--params", params, "--out", out)
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in csv.DictReader(out.open())]
    assert ids == ["brain1_brain1", "brain1_brain1-2"]


@pytest.mark.parametrize("deep", [False, True])
def test_features_bad_out_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep: bool
) -> None:
    import medlabel.classify.bundle
    import medlabel.features

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("features computed before --out was checked")

    monkeypatch.setattr(medlabel.features, "extract_many", no_work)
    monkeypatch.setattr(medlabel.classify.bundle, "load_bundle", no_work)
    root = tmp_path / "Task04"
    _volume_case(root, "case_1")
    args = ["--model", "cxr-pneumonia", root / "imagesTr"] if deep else ["--pairs", root]
    folder = tmp_path / "existing"
    folder.mkdir()
    (tmp_path / "plain.csv").write_text("keep")
    for out, reason in (
        (tmp_path / "x.txt", "cannot write a feature table as .txt; use .csv or .json"),
        (folder, "is a folder; give a .csv or .json file path"),
        (tmp_path / "plain.csv" / "f.csv", "cannot create its folder"),
    ):
        result = run("features", *args, "--out", out)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {out}: {reason}"), result.stderr
    assert not list(folder.iterdir()) and (tmp_path / "plain.csv").read_text() == "keep"


class _StubBundle:
    """A 2D embedding model like cxr-pneumonia's, without the network: the mean and the
    maximum of the image, and the same refusal of volumes."""

    def prepare(self, image: Any) -> Any:
        import numpy as np

        from medlabel.errors import PreprocessError

        if image.ndim == 3 and image.array.shape[0] != 1:
            raise PreprocessError(
                None,
                f"a 2D model takes single images; this is a volume of "
                f"{image.array.shape[0]} slices",
            )
        return np.asarray(image.array, np.float32)

    def embed(self, batch: Any) -> Any:
        import numpy as np

        flat = batch.reshape(len(batch), -1)
        return np.stack([flat.mean(axis=1), flat.max(axis=1)], axis=1)


@pytest.fixture
def stub_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    import medlabel.classify.bundle

    monkeypatch.setattr(medlabel.classify.bundle, "load_bundle", lambda *a, **k: _StubBundle())


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")  # broken.dcm
def test_features_model_folder_includes_dicom_files_and_series(
    tmp_path: Path, make_series: Any, stub_bundle: None
) -> None:
    import csv

    import numpy as np

    from medlabel.image import MedicalImage
    from medlabel.io import write_image

    root = tmp_path / "exports"
    write_image(MedicalImage(np.full((8, 8), 7, np.uint8)), root / "a.png")
    for k in (1, 2):  # two 2D files, each its own series
        make_series("exports/dcm", n=1, series_uid=f"1.2.9.{k}", prefix=f"cr{k}_", modality="CR")
    make_series("exports/ct", n=3, series_uid="1.2.7")  # a volume
    (root / "dcm" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 20)
    (root / "notes.txt").write_text("not an image")
    out = tmp_path / "deep.csv"
    result = run("features", root, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert sorted(rows) == [
        str(root / name)
        for name in ("a.png", "ct", "dcm/broken.dcm", "dcm/cr1_0000", "dcm/cr2_0000")
    ]
    assert float(rows[str(root / "a.png")]["deep_0"]) == 7
    for name in ("cr1_0000", "cr2_0000"):  # what the bundle saw: the slice in HU
        assert float(rows[str(root / "dcm" / name)]["deep_1"]) == 100 + 20 - 1024
    assert (
        rows[str(root / "ct")]["error"]
        == "a 2D model takes single images; this is a volume of 3 slices"
    )
    assert rows[str(root / "dcm" / "broken.dcm")]["error"]  # the reason, not silence
    assert "5 row(s), 2 deep features, 2 failed; 1 non-image file(s) passed over" in result.stdout


def test_features_model_folder_of_several_series(
    tmp_path: Path, make_series: Any, stub_bundle: None
) -> None:
    import csv

    make_series("pacs", n=1, series_uid="1.2.1", prefix="A")
    make_series("pacs", n=1, series_uid="1.2.2", prefix="B")
    make_series("pacs", n=3, series_uid="1.2.3", prefix="C")
    make_series("pacs", n=3, series_uid="1.2.4", prefix="D")
    pacs = tmp_path / "pacs"
    out = tmp_path / "deep.csv"
    # every file or series its own row: no "folder holds 4 series" refusal
    result = run("features", pacs, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == [
        f"{pacs}#1.2.3",  # two volumes in one folder: told apart by their series
        f"{pacs}#1.2.4",
        str(pacs / "A0000"),
        str(pacs / "B0000"),
    ]
    assert [bool(r["error"]) for r in rows] == [True, True, False, False]
    # ... or one of them, chosen with --series as in the other reading commands
    result = run("features", pacs, "--series", "1.2.2", "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(out.open())
    assert row["id"] == str(pacs) and float(row["deep_1"]) == 100 + 20 - 1024
    # a volume alone: the error row is written, and the command fails with its reason
    result = run("features", pacs, "--series", "1.2.3", "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"error: {pacs}: a 2D model takes single images; this is a volume of 3 slices\n"
    )
    (row,) = csv.DictReader(out.open())
    assert row["error"]


@pytest.mark.realdata
def test_features_model_embeds_real_radiographs_in_dicom(shared_data: Path, tmp_path: Path) -> None:
    import csv
    import shutil

    folder = tmp_path / "dcm"
    folder.mkdir()
    for name in ("RG1_UNCR.dcm", "RG3_J2KR.dcm"):
        shutil.copy(shared_data / "dicom-samples" / name, folder / name)
    out = tmp_path / "deep.csv"
    result = run("features", folder, "--model", "cxr-pneumonia", "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["id"]).name for r in rows] == ["RG1_UNCR.dcm", "RG3_J2KR.dcm"]
    assert not any(r["error"] for r in rows) and len(rows[0]) > 100


@pytest.mark.realdata
def test_features_pairs_on_real_hippocampus_without_one_mask(
    shared_data: Path, tmp_path: Path
) -> None:
    import csv
    import shutil

    source = shared_data / "msd-hippocampus"
    root = tmp_path / "Task04"
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for name in ("hippocampus_001.nii.gz", "hippocampus_003.nii.gz"):
        shutil.copy(source / "imagesTr" / name, root / "imagesTr" / name)
    shutil.copy(source / "labelsTr" / "hippocampus_001.nii.gz", root / "labelsTr")
    params = tmp_path / "params.json"
    params.write_text(_FIRST_ORDER)
    out = tmp_path / "hip.csv"
    result = run("features", "--pairs", root, "--params", params, "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [(r["id"], r["label"]) for r in rows] == [
        ("hippocampus_001", "1"),
        ("hippocampus_001", "2"),
        ("hippocampus_003", ""),
    ]
    expected = root / "labelsTr" / "hippocampus_003.nii.gz"
    assert rows[2]["error"].endswith(f"no mask found: expected {expected}")
