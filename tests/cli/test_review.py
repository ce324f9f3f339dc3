"""``medlabel next`` and ``medlabel review`` from the command line: jobs made from relative
paths, folders that hold no job, and bad options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medlabel.annotate.items import read_item
from medlabel.cli import app
from medlabel.io import write_image
from medlabel.review.export import export_reviewed
from medlabel.review.store import open_store, source_item
from medlabel.segment.recipes.ct import chest_phantom

runner = CliRunner()


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ct-lungs job made with relative paths (``annotate in --out out``) in ``tmp_path``."""
    write_image(chest_phantom()[0], tmp_path / "in" / "chest.nii.gz")
    monkeypatch.chdir(tmp_path)
    result = run("annotate", "in", "--out", "out", "--model", "ct-lungs")
    assert result.exit_code == 0, result.output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path / "out"


def test_a_job_from_relative_paths_is_read_from_anywhere(job: Path) -> None:
    (row,) = [json.loads(line) for line in (job / "manifest.jsonl").read_text().splitlines()]
    assert row["source"] == "chest.nii.gz"
    assert row["files"] == [str(job.parent / "in" / "chest.nii.gz")]
    store = open_store(job)
    store.import_job(job)
    item = store.item(row["item"])
    assert item is not None
    assert read_item(source_item(item)).array.shape == chest_phantom()[0].array.shape
    store.add_user("ana", "reviewer", "long enough pw")
    store.decide(row["item"], "ct-lungs", "accepted", "ana")
    with export_reviewed(job, "ct-lungs").path.open() as fh:
        (pair,) = list(csv.DictReader(fh))
    assert Path(pair["image"]).is_file() and Path(pair["label"]).is_file()


def test_a_job_from_before_is_repaired_by_reimporting(job: Path) -> None:
    manifest = job / "manifest.jsonl"
    good = manifest.read_text()
    old = json.loads(good)
    old["files"] = ["in/chest.nii.gz"]  # as medlabel wrote it before: relative to the shell
    manifest.write_text(json.dumps(old) + "\n")
    store = open_store(job)
    store.import_job(job)
    manifest.write_text(good)
    store.import_job(job)
    item = store.item(old["item"])
    assert item is not None and Path(item["files"]["paths"][0]).is_file()


def test_next_lists_refuses_and_says_when_nothing_is_left(job: Path) -> None:
    listed = run("next", job)
    assert listed.exit_code == 0 and "ct-lungs" in listed.stdout
    for n in ("0", "-3"):
        bad = run("next", job, "--n", n)
        assert bad.exit_code == 1 and "--n" in bad.stderr and "at least 1" in bad.stderr
        assert bad.stdout == ""
    nope = run("next", job, "--model", "nope")
    assert nope.exit_code == 1
    assert "no results of model 'nope'" in nope.stderr and "its models: ct-lungs" in nope.stderr
    store = open_store(job)
    store.add_user("ana", "reviewer", "long enough pw")
    for r in store.predictions("pending"):
        store.decide(r["item"], r["model"], "rejected", "ana")
    empty = run("next", job)
    assert empty.exit_code == 0 and empty.stdout == "nothing pending for review\n"
    assert json.loads(run("next", job, "--json").stdout) == []


def test_next_on_a_job_whose_items_failed_says_so(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "broken.nii.gz").write_bytes(b"\x1f\x8b not a volume")
    done = run("annotate", tmp_path / "in", "--out", tmp_path / "out", "--model", "ct-lungs")
    assert done.exit_code == 1  # the one item failed
    listed = run("next", tmp_path / "out")
    assert listed.exit_code == 0
    assert listed.stdout.startswith("nothing pending for review; 1 item(s) failed")
    nope = run("next", tmp_path / "out", "--model", "ct-lungs")
    assert nope.exit_code == 1 and "no results at all (every item failed" in nope.stderr


def test_rank_pending_refuses_less_than_one(job: Path) -> None:
    from medlabel.review.queue import next_items, rank_pending

    with pytest.raises(ValueError, match="at least 1"):
        rank_pending(job, [], "uncertainty", 0)
    with pytest.raises(ValueError, match="at least 1"):
        next_items(job, n=-3)


@pytest.mark.parametrize("command", ["next", "review"])
def test_a_folder_without_a_job_is_left_alone(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "nope"
    result = run(command, missing)
    assert result.exit_code == 1 and not missing.exists()
    why = "no manifest.jsonl here: run medlabel annotate first"
    assert result.stderr == f"error: {missing}: {why}\n"
    plain = tmp_path / "plain"
    plain.mkdir()
    result = run(command, plain)
    assert result.exit_code == 1 and "no manifest.jsonl" in result.stderr
    assert list(plain.iterdir()) == []
    # adding a user is refused there too: it would make a store beside no job
    result = runner.invoke(app, ["review", str(plain), "--add-user", "ana"], input="long pw!!\n")
    assert result.exit_code == 1 and list(plain.iterdir()) == []


def test_export_from_a_folder_without_a_job_creates_nothing(tmp_path: Path) -> None:
    from medlabel.errors import StoreError

    with pytest.raises(StoreError, match=r"no manifest\.jsonl"):
        export_reviewed(tmp_path / "nope", "ct-lungs")
    assert not (tmp_path / "nope").exists()
