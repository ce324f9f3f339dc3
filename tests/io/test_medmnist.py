"""Tests of medlabel.io.medmnist on synthetic archives shaped like the real ones."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medlabel.errors import ReadError
from medlabel.io import read_image
from medlabel.io.medmnist import MedMNISTArchive

COUNTS = {"train": 5, "val": 2, "test": 3}


def _archive(
    path: Path,
    image_shape: tuple[int, ...],
    label_width: int = 1,
    splits: dict[str, int] = COUNTS,
    n_classes: int = 4,
) -> dict[str, np.ndarray]:
    """Write an ``.npz`` like MedMNIST's: uint8 images, ``(N, K)`` integer labels."""
    rng = np.random.default_rng(len(image_shape) * 10 + label_width)
    arrays: dict[str, np.ndarray] = {}
    for split, n in splits.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
        high = 2 if label_width > 1 else n_classes
        arrays[f"{split}_labels"] = rng.integers(0, high, (n, label_width), dtype=np.int64)
    np.savez_compressed(path, **arrays)
    return arrays


# ------------------------------------------------------------------------------ 2D greyscale
def test_2d_archive_splits_counts_and_labels(tmp_path: Path) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    arrays = _archive(path, (28, 28))
    archive = MedMNISTArchive(path)
    assert archive.splits == ("train", "val", "test")
    assert {s: archive.count(s) for s in archive.splits} == COUNTS
    assert archive.is_3d is False
    labels = archive.labels("train")
    assert labels.shape == (5,)  # (N, 1) is flattened
    np.testing.assert_array_equal(labels, arrays["train_labels"][:, 0])
    np.testing.assert_array_equal(archive.images("val"), arrays["val_images"])


def test_2d_image_geometry_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "pneumoniamnist.npz"
    arrays = _archive(path, (28, 28))
    img = MedMNISTArchive(path).image("val", 1)
    assert (img.ndim, img.channels, img.size) == (2, 0, (28, 28))
    assert img.spacing == (1.0, 1.0)
    assert img.origin == (0.0, 0.0)
    assert img.direction == (1.0, 0.0, 0.0, 1.0)
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img.array, arrays["val_images"][1])
    assert img.metadata == {
        "format": "medmnist",
        "split": "val",
        "index": 1,
        "label": int(arrays["val_labels"][1, 0]),
        "spacing_unknown": True,
    }


def test_medmnist_pixels_have_no_known_size(tmp_path: Path) -> None:
    """MedMNIST images are downsampled crops: spacing 1 is a grid, not millimetres, so
    `info --json` says `spacing_known: false` and sizes are counted in pixels."""
    from typer.testing import CliRunner

    from medlabel.cli import app
    from medlabel.segment.labelmap import size_unit

    path = tmp_path / "pneumoniamnist.npz"
    _archive(path, (28, 28))
    _archive(tmp_path / "organmnist3d.npz", (8, 8, 8))
    flat, volume = MedMNISTArchive(path), MedMNISTArchive(tmp_path / "organmnist3d.npz")
    assert size_unit(flat.image("test", 0)) == ("px", 1.0)  # was ("cm2", 0.01)
    assert size_unit(volume.image("test", 0)) == ("voxels", 1.0)
    result = CliRunner().invoke(app, ["info", str(path), "--index", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["spacing_known"] is False


def test_negative_index_counts_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    arrays = _archive(path, (28, 28))
    img = MedMNISTArchive(path).image("train", -1)
    np.testing.assert_array_equal(img.array, arrays["train_images"][-1])


# ------------------------------------------------------------------------------------ RGB
def test_rgb_archive_gives_2d_three_channel_images(tmp_path: Path) -> None:
    path = tmp_path / "pathmnist.npz"
    arrays = _archive(path, (28, 28, 3), n_classes=9)
    archive = MedMNISTArchive(path)
    assert archive.is_3d is False
    img = archive.image("test", 2)
    assert (img.ndim, img.channels, img.size) == (2, 3, (28, 28))
    np.testing.assert_array_equal(img.array, arrays["test_images"][2])
    assert archive.summary()["dims"] == 2


# ------------------------------------------------------------------------------------- 3D
def test_3d_archive_gives_volumes(tmp_path: Path) -> None:
    path = tmp_path / "organmnist3d.npz"
    arrays = _archive(path, (28, 28, 28), n_classes=11)
    archive = MedMNISTArchive(path)
    assert archive.is_3d is True
    img = archive.image("train", 4)
    assert (img.ndim, img.channels, img.size) == (3, 0, (28, 28, 28))
    assert img.spacing == (1.0, 1.0, 1.0)
    assert img.direction == tuple(np.eye(3).ravel())
    np.testing.assert_array_equal(img.array, arrays["train_images"][4])
    assert archive.summary()["dims"] == 3


# ---------------------------------------------------------------------------- multi-label
def test_multi_label_archive_keeps_label_vectors(tmp_path: Path) -> None:
    path = tmp_path / "chestmnist.npz"
    arrays = _archive(path, (28, 28), label_width=14)
    archive = MedMNISTArchive(path)
    labels = archive.labels("train")
    assert labels.shape == (5, 14)
    np.testing.assert_array_equal(labels, arrays["train_labels"])
    img = archive.image("train", 3)
    assert img.metadata["label"] == arrays["train_labels"][3].tolist()
    assert len(img.metadata["label"]) == 14
    summary = archive.summary()["splits"]["train"]
    assert summary["labels_positive"] == arrays["train_labels"].sum(axis=0).tolist()
    assert "labels" not in summary


def test_summary_of_single_label_archive(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    arrays = _archive(path, (28, 28))
    summary = MedMNISTArchive(path).summary()
    assert summary["format"] == "medmnist"
    assert list(summary["splits"]) == ["train", "val", "test"]
    train = summary["splits"]["train"]
    assert (train["count"], train["shape"], train["dtype"]) == (5, [28, 28], "uint8")
    values, counts = np.unique(arrays["train_labels"], return_counts=True)
    assert train["labels"] == {str(v): int(c) for v, c in zip(values, counts, strict=True)}
    assert sum(train["labels"].values()) == 5


def test_only_splits_present_are_listed_in_canonical_order(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    _archive(path, (28, 28), splits={"test": 2, "train": 3})
    archive = MedMNISTArchive(path)
    assert archive.splits == ("train", "test")
    assert archive.count("test") == 2


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("index", [3, 100, -4])
def test_index_out_of_range_is_a_read_error(tmp_path: Path, index: int) -> None:
    path = tmp_path / "a.npz"
    _archive(path, (28, 28))
    with pytest.raises(ReadError, match=rf"index {index} out of range for test \(3 images\)"):
        MedMNISTArchive(path).image("test", index)


def test_missing_split_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    _archive(path, (28, 28), splits={"train": 2})
    archive = MedMNISTArchive(path)
    for call in (archive.images, archive.labels, archive.count):
        with pytest.raises(ReadError, match="no split 'val'; available: train"):
            call("val")
    with pytest.raises(ReadError, match="no split 'val'"):
        archive.image("val", 0)


def test_text_file_named_npz_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.npz"
    path.write_text("train_images,train_labels\n1,2\n")
    with pytest.raises(ReadError, match=r"not a readable \.npz archive") as info:
        MedMNISTArchive(path)
    assert info.value.path == path


def test_empty_file_named_npz_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(ReadError, match=r"empty\.npz"):
        MedMNISTArchive(path)


def test_single_npy_array_named_npz_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "array.npz"
    with path.open("wb") as fh:
        np.save(fh, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ReadError, match=r"array\.npz: .*not an \.npz archive"):
        MedMNISTArchive(path)


def test_truncated_npz_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    _archive(path, (28, 28))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=r"a\.npz"):
        MedMNISTArchive(path).image("train", 0)


def test_npz_without_images_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3), train_labels=np.zeros((3, 1)))
    with pytest.raises(ReadError, match="not MedMNIST"):
        MedMNISTArchive(path)


def test_unreadable_member_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, train_images=np.zeros((2, 28, 28), np.uint8))
    with zipfile.ZipFile(path, "a") as zf:  # a member that is not an .npy array
        zf.writestr("train_labels.npy", b"not numpy")
    archive = MedMNISTArchive(path)
    assert archive.count("train") == 2
    with pytest.raises(ReadError, match="array 'train_labels' cannot be read"):
        archive.labels("train")


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="no such file"):
        MedMNISTArchive(tmp_path / "nope.npz")


# --------------------------------------------------------------------------- read_image
def test_read_image_with_index_and_split(tmp_path: Path) -> None:
    path = tmp_path / "bloodmnist.npz"
    arrays = _archive(path, (28, 28, 3))
    img = read_image(path, index=1, split="train")
    np.testing.assert_array_equal(img.array, arrays["train_images"][1])
    assert (img.metadata["split"], img.metadata["index"]) == ("train", 1)
    default = read_image(os.fspath(path), index=0)  # default split: test
    np.testing.assert_array_equal(default.array, arrays["test_images"][0])
    assert read_image(path, index=0, is_label=True).is_label


def test_read_image_without_index_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    _archive(path, (28, 28))
    with pytest.raises(ReadError, match="give an index") as info:
        read_image(path)
    assert info.value.path == path
    with pytest.raises(ReadError, match="no split 'holdout'"):
        read_image(path, index=0, split="holdout")
