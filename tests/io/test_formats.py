"""Tests of medlabel.io.formats: extensions, format detection and DICOM sniffing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from medlabel.io.formats import (
    READ_FORMATS,
    WRITE_FORMATS,
    detect_format,
    full_suffix,
    is_dicom_file,
)


@pytest.fixture
def dicom_bytes() -> bytes:
    """A real Part 10 DICOM file (CT, with preamble) from pydicom's bundled test data."""
    return Path(get_testdata_file("CT_small.dcm")).read_bytes()


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("ct.nii.gz", ".nii.gz"),
        ("CT.NII.GZ", ".nii.gz"),
        ("ct.nii", ".nii"),
        ("archive.tar.gz", ".gz"),
        ("mask.seg.nrrd", ".nrrd"),
        ("Chest.JPEG", ".jpeg"),
        ("IM0001", ""),
        (".hidden", ""),
        ("folder/sub.dir/file", ""),
        ("folder.nii.gz/file.png", ".png"),
    ],
)
def test_full_suffix(name: str, suffix: str) -> None:
    assert full_suffix(name) == suffix
    assert full_suffix(Path(name)) == suffix


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.nii", "nifti"),
        ("a.nii.gz", "nifti"),
        ("A.Nii.Gz", "nifti"),
        ("a.nrrd", "nrrd"),
        ("a.nhdr", "nrrd"),
        ("a.mha", "metaimage"),
        ("a.mhd", "metaimage"),
        ("a.png", "raster"),
        ("a.jpg", "raster"),
        ("a.JPEG", "raster"),
        ("a.tif", "raster"),
        ("a.tiff", "raster"),
        ("a.bmp", "raster"),
        ("pathmnist.npz", "medmnist"),
        ("a.dcm", "dicom"),
        ("a.DICOM", "dicom"),
        ("a.IMA", "dicom"),
        ("DICOMDIR", "dicom"),
        ("dicomdir", "dicom"),
        ("a.gz", None),
        ("a.txt", None),
        ("a.xyz", None),
        ("IM0001", None),  # does not exist: not sniffable
    ],
)
def test_detect_format_by_name(tmp_path: Path, name: str, fmt: str | None) -> None:
    assert detect_format(tmp_path / name) == fmt


def test_every_read_extension_is_detected_and_write_formats_are_readable() -> None:
    for ext in READ_FORMATS:
        assert detect_format(f"file{ext}") is not None, ext
    assert set(WRITE_FORMATS) <= set(READ_FORMATS)
    assert ".jpg" not in WRITE_FORMATS


def test_extensionless_dicom_is_detected_by_content(tmp_path: Path, dicom_bytes: bytes) -> None:
    path = tmp_path / "IM0001"
    shutil.copyfile(get_testdata_file("CT_small.dcm"), path)
    assert dicom_bytes[128:132] == b"DICM"
    assert is_dicom_file(path)
    assert detect_format(path) == "dicom"


def test_dicom_with_other_extension_is_sniffed(tmp_path: Path, dicom_bytes: bytes) -> None:
    path = tmp_path / "1.2.840.113619.2.55"  # UID-named file: suffix ".55"
    path.write_bytes(dicom_bytes)
    assert full_suffix(path) == ".55"
    assert detect_format(path) == "dicom"


def test_extensionless_non_dicom_is_unknown(tmp_path: Path, dicom_bytes: bytes) -> None:
    text = tmp_path / "notes"
    text.write_bytes(b"x" * 500)
    assert not is_dicom_file(text)
    assert detect_format(text) is None
    moved = tmp_path / "shifted"  # DICM at the wrong offset
    moved.write_bytes(b"\0" * 4 + dicom_bytes)
    assert not is_dicom_file(moved)
    short = tmp_path / "short"
    short.write_bytes(dicom_bytes[:131])
    assert not is_dicom_file(short)


def test_dcm_extension_without_preamble_is_accepted(tmp_path: Path, dicom_bytes: bytes) -> None:
    acr_nema = tmp_path / "old.dcm"
    acr_nema.write_bytes(dicom_bytes[132:])  # dataset without preamble and magic
    assert is_dicom_file(acr_nema)
    same_bytes_no_ext = tmp_path / "old"
    same_bytes_no_ext.write_bytes(dicom_bytes[132:])
    assert not is_dicom_file(same_bytes_no_ext)


def test_empty_missing_and_folder_are_not_dicom(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert not is_dicom_file(empty)
    assert not is_dicom_file(tmp_path / "missing.dcm")
    assert not is_dicom_file(tmp_path)
    assert detect_format(tmp_path) is None


@pytest.mark.parametrize("name", ["empty.nii.gz", "empty.png", "empty.dcm", "empty.nrrd"])
def test_an_empty_file_is_named_as_such(tmp_path: Path, name: str) -> None:
    from medlabel.errors import ReadError
    from medlabel.io import read_image

    (tmp_path / name).write_bytes(b"")
    with pytest.raises(ReadError, match=r"empty file \(0 bytes\)"):
        read_image(tmp_path / name)
