"""Tests of medlabel.features.table: the output path is checked before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlabel.errors import WriteError
from medlabel.features import write_features
from medlabel.features.table import check_features_path


@pytest.mark.parametrize("name", ["features.csv", "features.JSON", "new/sub/f.csv"])
def test_writable_paths_pass(tmp_path: Path, name: str) -> None:
    assert check_features_path(tmp_path / name) == tmp_path / name
    assert not (tmp_path / "new").exists()  # checking creates nothing


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("features.txt", "cannot write a feature table as .txt; use .csv or .json"),
        ("features", r"cannot write a feature table as \(no extension\)"),
    ],
)
def test_unsupported_extensions_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    with pytest.raises(WriteError, match=reason):
        check_features_path(tmp_path / name)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "out.csv"
    folder.mkdir()
    with pytest.raises(WriteError, match=r"is a folder; give a \.csv or \.json file path"):
        check_features_path(folder)
    with pytest.raises(WriteError, match="is a folder"):
        write_features([{"id": "a"}], folder)
    assert not list(folder.iterdir())


def test_a_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text("keep")
    with pytest.raises(WriteError, match=r"cannot create its folder: .*notes\.csv is a file"):
        check_features_path(tmp_path / "notes.csv" / "f.csv")
    assert (tmp_path / "notes.csv").read_text() == "keep"
