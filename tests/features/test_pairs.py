"""Tests of medlabel.features.pairs: image/mask pairs from CSV lists and paired folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlabel.features import FeatureError
from medlabel.features.pairs import Pair, find_pairs, unique_ids


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_an_image_without_its_mask_is_a_pair_with_an_error(tmp_path: Path) -> None:
    for case in ("hippocampus_001", "hippocampus_003", "hippocampus_004"):
        touch(tmp_path / "imagesTr" / f"{case}.nii.gz")
        if case != "hippocampus_003":
            touch(tmp_path / "labelsTr" / f"{case}.nii.gz")
    pairs = find_pairs(tmp_path)
    assert [p.id for p in pairs] == ["hippocampus_001", "hippocampus_003", "hippocampus_004"]
    assert [bool(p.error) for p in pairs] == [False, True, False]
    expected = tmp_path / "labelsTr" / "hippocampus_003.nii.gz"
    assert pairs[1].mask == expected
    assert pairs[1].error == f"no mask found: expected {expected}"


def test_channel_suffix_is_dropped_in_the_expected_mask_name(tmp_path: Path) -> None:
    touch(tmp_path / "imagesTr" / "case_0000.nii.gz")
    (tmp_path / "labelsTr").mkdir()
    (pair,) = find_pairs(tmp_path)
    assert pair == Pair(
        "case",
        tmp_path / "imagesTr" / "case_0000.nii.gz",
        tmp_path / "labelsTr" / "case.nii.gz",
        pair.error,
    )
    assert pair.error.startswith("no mask found")


def test_a_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(FeatureError, match="images/ holds no images"):
        find_pairs(tmp_path)


def test_csv_ids_are_unique(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        "image,mask\n"
        "brain1_image.nrrd,brain1_label.nrrd\n"
        "brain1_image.nrrd,brain1_label.nrrd\n"
        "brain1_image.nrrd,oedema.nrrd\n"
        "breast1_image.nrrd,breast1_label.nrrd\n"
    )
    ids = [p.id for p in find_pairs(csv)]
    assert ids == [
        "brain1_image_brain1_label",
        "brain1_image_brain1_label-2",
        "brain1_image_oedema",
        "breast1_image",
    ]


def test_csv_given_ids_are_kept_and_repeats_numbered(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    csv.write_text("id,image,mask\ncase,a.nrrd,m.nrrd\ncase,b.nrrd,m.nrrd\n,c.nrrd,\n")
    pairs = find_pairs(csv)
    assert [p.id for p in pairs] == ["case", "case-2", "c"]
    assert pairs[2].error == "no mask given in pairs.csv for c.nrrd"


def test_unique_ids_skip_taken_names() -> None:
    assert unique_ids(["a", "a", "a-2", "b"]) == ["a", "a-3", "a-2", "b"]
    assert unique_ids([]) == []
