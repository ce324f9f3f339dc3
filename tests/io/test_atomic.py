"""Tests of medlabel.io.atomic.atomic_output."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlabel.errors import WriteError
from medlabel.io.atomic import atomic_output, check_output_path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_success_renames_temp_file_onto_target(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp != target
        tmp.write_text("done")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_text() == "done"
    assert not tmp.exists()
    assert _files(tmp_path) == ["result.txt"]


def test_success_replaces_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    with atomic_output(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"
    assert target.read_text() == "new"
    assert _files(tmp_path) == ["result.txt"]


def test_error_removes_temp_file_and_keeps_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    seen: list[Path] = []
    with pytest.raises(RuntimeError, match="writer failed"), atomic_output(target) as tmp:
        seen.append(tmp)
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert not seen[0].exists()
    assert _files(tmp_path) == ["result.txt"]


def test_error_without_existing_target_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "result.nii.gz"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt  # also on interrupts, not only on Exception
    assert _files(tmp_path) == []


def test_writer_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "result.png"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match="produced no file"), atomic_output(target):
        pass
    assert target.read_bytes() == b"old"
    assert _files(tmp_path) == ["result.png"]


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("scan.nii.gz", ".nii.gz"),
        ("SCAN.NII.GZ", ".nii.gz"),  # lower-cased: writers pick the format from it
        ("mask.nrrd", ".nrrd"),
        ("x.png", ".png"),
        ("v1.2.mha", ".mha"),
        ("README", ""),
    ],
)
def test_temp_name_keeps_the_full_suffix_and_is_hidden(
    tmp_path: Path, name: str, suffix: str
) -> None:
    with atomic_output(tmp_path / name) as tmp:
        tmp.write_text("x")
        assert tmp.name.startswith(".")
        assert tmp.name.endswith(suffix)
        stem = name[: len(name) - len(suffix)]
        assert tmp.name.startswith(f".{stem}.tmp-")
        assert len(tmp.name) > len(f".{stem}.tmp-{suffix}")  # a unique part before the suffix
    assert (tmp_path / name).read_text() == "x"


def test_temp_names_are_unique(tmp_path: Path) -> None:
    names = set()
    for _ in range(5):
        with atomic_output(tmp_path / "a.nii.gz") as tmp:
            names.add(tmp.name)
            tmp.write_text("x")
    assert len(names) == 5


def test_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.txt"
    with atomic_output(str(target)) as tmp:
        assert tmp.parent.is_dir()
        tmp.write_text("ok")
    assert target.read_text() == "ok"


def test_a_file_in_the_folder_path_is_a_clear_write_error(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text("print()")
    target = tmp_path / "script.py" / "x.nii.gz"
    with (
        pytest.raises(WriteError, match=r"script\.py is a file, not a folder"),
        atomic_output(target) as tmp,
    ):
        tmp.write_text("never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.py"]


def test_a_folder_as_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.nii.gz").mkdir()
    with pytest.raises(WriteError, match="is a folder"):
        check_output_path(tmp_path / "out.nii.gz")
