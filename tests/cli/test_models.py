"""predict and evaluate never overwrite what their --out does not own."""

from __future__ import annotations

from pathlib import Path

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
