"""Discovery: one item per image file or DICOM series, stable ids, nothing lost silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlabel.annotate.items import content_hash, discover, read_item
from medlabel.errors import MedlabelError, ReadError


def test_mixed_folder_gives_one_item_per_file_and_per_series(mixed_archive: Path) -> None:
    found = discover(mixed_archive)
    by_source = {i.source: i for i in found.items}
    assert set(by_source) == {
        "ct/chest.nii.gz",
        "ct/corrupt.nii.gz",
        "dicom/series1",
        "png/photo.png",
    }
    series = by_source["dicom/series1"]
    assert series.kind == "dicom-series" and len(series.files) == 24 and series.modality == "CT"
    assert found.ignored == 1  # notes.txt
    assert read_item(series).array.shape == (24, 64, 64)
    with pytest.raises(MedlabelError, match=r"corrupt\.nii\.gz"):
        read_item(by_source["ct/corrupt.nii.gz"])
    # ids are stable and unique
    again = discover(mixed_archive)
    assert [i.id for i in again.items] == [i.id for i in found.items]
    assert len({i.id for i in found.items}) == len(found.items)


def test_a_series_that_is_the_archive_is_named_after_its_folder(mixed_archive: Path) -> None:
    # outputs are named by the id: an id starting with "." would hide every mask and thumbnail
    found = discover(mixed_archive / "dicom" / "series1")
    (series,) = found.items
    assert series.source == "." and series.kind == "dicom-series"
    assert series.id.startswith("series1-")


def test_csv_list_and_missing_paths(mixed_archive: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("path\narchive/png/photo.png\narchive/dicom\narchive/gone.png\n")
    found = discover(listing)
    sources = sorted(i.source for i in found.items)
    assert sources == ["archive/dicom/series1", "archive/gone.png", "archive/png/photo.png"]
    gone = next(i for i in found.items if i.source == "archive/gone.png")
    assert gone.error == "no such file or folder"
    (tmp_path / "bad.csv").write_text("file\nx.png\n")
    with pytest.raises(ReadError, match="'path' column"):
        discover(tmp_path / "bad.csv")


def test_output_folder_inside_input_is_excluded(mixed_archive: Path) -> None:
    out = mixed_archive / "results"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "m.nii.gz").write_bytes(b"x")
    assert all(
        not i.source.startswith("results") for i in discover(mixed_archive, exclude=out).items
    )


def test_content_hash_follows_the_bytes(mixed_archive: Path) -> None:
    item = next(i for i in discover(mixed_archive).items if i.source == "png/photo.png")
    before = content_hash(item)
    assert content_hash(item) == before
    Path(item.files[0]).write_bytes(Path(item.files[0]).read_bytes() + b"\0")
    assert content_hash(item) != before


def test_files_are_absolute_for_a_relative_input(
    mixed_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sources and ids stay relative to the input; the files can be read from any folder."""
    absolute = discover(mixed_archive)
    link = tmp_path / "linked"
    link.symlink_to(mixed_archive, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    found = discover(Path("archive"))
    assert [(i.id, i.source) for i in found.items] == [(i.id, i.source) for i in absolute.items]
    assert all(Path(f).is_absolute() for i in found.items for f in i.files)
    by_source = {i.source: i for i in found.items}
    assert by_source["png/photo.png"].files == (str(mixed_archive / "png" / "photo.png"),)
    # symbolic links are kept (not resolved), as given
    linked = {i.source: i for i in discover(Path("linked")).items}
    assert linked["png/photo.png"].files == (str(link / "png" / "photo.png"),)
    # a CSV with relative entries, read relative to the CSV's folder
    Path("list.csv").write_text("path\narchive/png/photo.png\n")
    (listed,) = discover(Path("list.csv")).items
    assert listed.source == "archive/png/photo.png"
    assert listed.files == (str(mixed_archive / "png" / "photo.png"),)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert read_item(by_source["dicom/series1"]).array.shape == (24, 64, 64)
    assert read_item(by_source["png/photo.png"]).array.shape == (64, 64)


def test_dicom_segmentations_and_reports_are_passed_over(
    mixed_archive: Path, tmp_path: Path
) -> None:
    """A DICOM SEG is a label map, not an image to annotate, and a structured report holds
    no image: both are counted as passed over, with their reasons, and become no item."""
    import shutil

    from pydicom.data import get_testdata_file

    before = discover(mixed_archive)
    shutil.copy(get_testdata_file("liver.dcm"), mixed_archive / "dicom" / "liver-seg.dcm")
    shutil.copy(get_testdata_file("test-SR.dcm"), mixed_archive / "dicom" / "report.dcm")
    found = discover(mixed_archive)
    assert [i.source for i in found.items] == [i.source for i in before.items]
    assert all(i.modality != "SEG" for i in found.items)
    assert found.ignored == before.ignored + 2
    reasons = dict(found.passed_over)
    assert reasons["dicom/liver-seg.dcm"] == "a DICOM Segmentation (SEG), not an image to annotate"
    assert "no image" in reasons["dicom/report.dcm"]
    with pytest.raises(ReadError, match=r"liver-seg\.dcm: a DICOM Segmentation"):
        discover(mixed_archive / "dicom" / "liver-seg.dcm")
