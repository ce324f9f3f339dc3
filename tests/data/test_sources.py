"""Data sources: MedMNIST files, class folders, CSV manifests; splits; bad input."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.data.dataset import ClassificationDataset, DatasetError
from medlabel.data.download import DownloadError, download_medmnist, fetch
from medlabel.data.sources import from_csv, from_folder, from_medmnist, open_dataset
from medlabel.image import MedicalImage


def write_npz(path: Path, *, n=(20, 6, 8), shape=(28, 28), labels_2d=True, k=2, multilabel=0):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        if not count:
            continue
        arrays[f"{split}_images"] = rng.integers(0, 255, (count, *shape)).astype(np.uint8)
        if multilabel:
            lab = rng.integers(0, 2, (count, multilabel))
        else:
            lab = np.arange(count) % k
            lab = lab[:, None] if labels_2d else lab
        arrays[f"{split}_labels"] = lab
    np.savez(path, **arrays)
    return path


def test_medmnist_official_flag_gets_names_and_task(tmp_path):
    ds = from_medmnist(write_npz(tmp_path / "pneumoniamnist.npz"))
    assert ds.class_names == ["normal", "pneumonia"] and ds.task == "binary"
    assert len(ds.indices("train")) == 20 and len(ds.indices("test")) == 8
    assert ds.labels.ndim == 1  # (N, 1) flattened
    img = ds.image(int(ds.indices("test")[3]))
    assert img.size == (28, 28) and img.metadata["split"] == "test"


def test_medmnist_sized_and_3d_files(tmp_path):
    ds = from_medmnist(
        write_npz(tmp_path / "organmnist3d_64.npz", shape=(8, 8, 8), k=11, n=(22, 11, 11))
    )
    assert ds.task == "multiclass" and len(ds.class_names) == 11
    assert ds.image(0).ndim == 3


def test_medmnist_unknown_flag_and_multilabel(tmp_path):
    ds = from_medmnist(write_npz(tmp_path / "custom.npz", multilabel=5))
    assert ds.task == "multilabel" and ds.class_names == ["0", "1", "2", "3", "4"]
    assert ds.labels.shape == (34, 5)  # all splits
    ds2 = from_medmnist(write_npz(tmp_path / "other.npz", labels_2d=False, k=3))
    assert ds2.task == "multiclass" and ds2.num_classes == 3


def test_retinamnist_is_ordinal(tmp_path):
    ds = from_medmnist(write_npz(tmp_path / "retinamnist.npz", k=5, shape=(28, 28, 3)))
    assert ds.task == "ordinal" and ds.image(0).channels == 3


def make_folder(root: Path, classes=("NORMAL", "PNEUMONIA"), n=6, split_dirs=None) -> Path:
    rng = np.random.default_rng(1)
    for split in split_dirs or [None]:
        for c in classes:
            d = root / split / c if split else root / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32)).astype(np.uint8)).save(
                    d / f"{c}_{i}.png"
                )
    return root


def test_class_folders(tmp_path):
    root = make_folder(tmp_path / "cxr")
    (root / "NORMAL" / "notes.txt").write_text("not an image")
    ds = from_folder(root)
    assert ds.class_names == ["NORMAL", "PNEUMONIA"]
    assert np.bincount(ds.labels).tolist() == [6, 6]
    assert set(ds.splits) == {"train"}
    assert any("notes.txt" in s for s, _ in ds.skipped)
    assert ds.image(0).size == (32, 32)


def test_split_folders(tmp_path):
    root = make_folder(tmp_path / "kermany", split_dirs=["train", "test"])
    ds = open_dataset(root)
    assert len(ds.indices("train")) == 12 and len(ds.indices("test")) == 12


def test_a_missing_split_names_those_there_are_and_all_takes_every_image(tmp_path):
    ds = from_folder(make_folder(tmp_path / "cxr", n=3))
    assert ds.require_split("all").tolist() == list(range(6)) == ds.indices("all").tolist()
    with pytest.raises(DatasetError, match=r"no 'test' split, only train \(6 images\)") as err:
        ds.require_split("test")
    assert "--split train" in str(err.value) and "--split all" in str(err.value)
    kermany = open_dataset(make_folder(tmp_path / "k", n=1, split_dirs=["train", "val"]))
    with pytest.raises(DatasetError, match="--split train or --split val"):
        kermany.require_split("test")


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_folder(tmp_path / "cxr")
    (root / "EMPTY").mkdir()
    with pytest.raises(DatasetError, match=r"EMPTY.*no readable images"):
        from_folder(root)


def test_csv_manifest_with_splits_and_groups(tmp_path):
    make_folder(tmp_path / "imgs")
    lines = ["path,label,split,group"]
    for i in range(6):
        lines.append(f"imgs/NORMAL/NORMAL_{i}.png,normal,train,p{i // 2}")
        lines.append(
            f"imgs/PNEUMONIA/PNEUMONIA_{i}.png,pneumonia,{'test' if i > 3 else 'train'},q{i // 2}"
        )
    lines.append("imgs/missing.png,normal,train,p9")
    csv_path = tmp_path / "manifest.csv"
    csv_path.write_text("\n".join(lines))
    ds = from_csv(csv_path)
    assert ds.class_names == ["normal", "pneumonia"]
    assert len(ds.indices("test")) == 2 and ds.groups is not None
    assert any("missing.png" in s for s, _ in ds.skipped)
    val = ds.with_validation_split(0.3, seed=0)
    # groups never straddle train and val
    tr, va = val.indices("train"), val.indices("val")
    assert len(va) > 0
    assert not set(val.groups[tr]) & set(val.groups[va])


def test_csv_rows_whose_file_is_missing_are_warned_about_and_summarised(tmp_path, caplog):
    make_folder(tmp_path / "imgs", n=2)
    path = tmp_path / "m.csv"
    path.write_text(
        "path,label\nimgs/NORMAL/NORMAL_0.png,a\nimgs/gone.png,a\nimgs/NORMAL/NORMAL_1.png,b\n"
    )
    with caplog.at_level(logging.WARNING, logger="medlabel"):
        ds = from_csv(path)
    assert "skipped 1 listed file(s)" in caplog.text and "gone.png" in caplog.text
    summary = ds.summary([("imgs/NORMAL/NORMAL_1.png", "file is truncated")])
    assert summary["skipped"] == 2
    assert summary["skipped_files"][0]["path"].endswith("gone.png")
    assert "line 3 of m.csv" in summary["skipped_files"][0]["reason"]
    assert summary["skipped_files"][1]["reason"] == "file is truncated"


def test_csv_bad_split_name(tmp_path):
    make_folder(tmp_path / "imgs")
    path = tmp_path / "m.csv"
    path.write_text("path,label,split\nimgs/NORMAL/NORMAL_0.png,a,holdout\n")
    with pytest.raises(DatasetError, match="unknown split"):
        from_csv(path)


def test_csv_multilabel(tmp_path):
    make_folder(tmp_path / "imgs")
    path = tmp_path / "m.csv"
    path.write_text(
        "path,label\nimgs/NORMAL/NORMAL_0.png,effusion|mass\nimgs/NORMAL/NORMAL_1.png,mass\n"
    )
    ds = from_csv(path)
    assert ds.task == "multilabel" and ds.labels.tolist() == [[1, 1], [0, 1]]


def _toy(labels: np.ndarray) -> ClassificationDataset:
    """Training samples ``"0"``, ``"1"``, ... with ``labels`` and blank images."""
    return ClassificationDataset(
        "toy",
        ["a", "b"],
        [str(i) for i in range(len(labels))],
        labels,
        np.array(["train"] * len(labels)),
        loader=lambda i: MedicalImage(np.zeros((4, 4))),
    )


def test_validation_split_is_stratified_and_deterministic(tmp_path):
    labels = np.array([0] * 80 + [1] * 20)
    ds = _toy(labels)
    a = ds.with_validation_split(0.2, seed=3)
    b = ds.with_validation_split(0.2, seed=3)
    assert np.array_equal(a.splits, b.splits)
    val_labels = labels[a.indices("val")]
    assert len(val_labels) == 20 and val_labels.sum() == 4  # 20 % positives, like the whole
    assert a.with_validation_split(0.5) is a  # an existing val split is kept


def test_fine_tuning_never_validates_on_what_the_model_was_trained_on():
    labels = np.array([0, 1] * 50)
    groups = np.repeat(np.arange(50), 2)  # two images per patient
    ds = _toy(labels)
    seen = {str(i) for i in range(60)}  # what the starting model trained on
    split = ds.with_validation_split(0.25, seed=0, seen=seen)
    val = {ds.ids[i] for i in split.indices("val")}
    assert not val & seen and len(val) == 10  # a quarter of the 40 new ones
    assert labels[split.indices("val")].sum() == 5  # still stratified
    plain = ds.with_validation_split(0.25, seed=0)
    assert {ds.ids[i] for i in plain.indices("val")} & seen  # what the check prevents
    # a patient with one seen image keeps the other in training too
    grouped = replace(ds, groups=groups)
    split = grouped.with_validation_split(0.25, seed=0, seen={"59", "61"})
    val = {int(ds.ids[i]) for i in split.indices("val")}
    assert not val & {58, 59, 60, 61} and val
    with pytest.raises(DatasetError, match="new to the model being fine-tuned"):
        ds.with_validation_split(0.25, seen={str(i) for i in range(99)})


def test_every_class_is_trained_on_and_validated_or_refused():
    def toy(labels, names=("a", "b"), groups=None, splits=None):
        return ClassificationDataset(
            "toy",
            list(names),
            [str(i) for i in range(len(labels))],
            np.array(labels),
            np.array(splits or ["train"] * len(labels)),
            loader=lambda i: MedicalImage(np.zeros((4, 4))),
            groups=None if groups is None else np.array(groups, dtype=object),
            source={"path": "man.csv"},
        )

    # 2 images of a rare class: one is validated, one trained on (stratifying alone gave none)
    labels = np.array([0] * 50 + [1] * 2)
    for seed in range(5):
        split = toy(labels).with_validation_split(0.1, seed=seed)
        assert labels[split.indices("val")].tolist().count(1) == 1
    # grouped: two patients with the rare class, one on each side
    groups = [f"p{i}" for i in range(50)] + ["q0", "q0", "q1"]
    rare = np.array([0] * 50 + [1] * 3)
    for seed in range(5):
        split = toy(rare, groups=groups).with_validation_split(0.1, seed=seed)
        assert 1 in rare[split.indices("val")] and 1 in rare[split.indices("train")]
    # one image (or one patient) of a class: refused before anything is trained
    one = toy([0, 1] * 10 + [2], names=("a", "b", "OTHER"))
    message = (
        "class 'OTHER' has 1 image: each class needs at least 2 (one to train on, one to validate)"
    )
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        one.with_validation_split(0.1)
    assert str(err.value).startswith("man.csv: ")
    with pytest.raises(DatasetError, match=r"'b' has 2 image\(s\), all of one group"):
        toy(
            [0] * 10 + [1, 1], groups=[f"p{i}" for i in range(10)] + ["q", "q"]
        ).with_validation_split(0.1)
    # a validation split of the source's own that lacks a class
    own = toy([0, 1, 0, 1, 0], splits=["train"] * 4 + ["val"])
    with pytest.raises(DatasetError, match=r"'b' has 2 training image\(s\) but none in the 'val'"):
        own.with_validation_split(0.1)


def test_unknown_label_value_is_refused():
    with pytest.raises(DatasetError, match=r"outside 0\.\.1"):
        ClassificationDataset(
            "toy",
            ["a", "b"],
            ["x"],
            np.array([2]),
            np.array(["train"]),
            loader=lambda i: MedicalImage(np.zeros((4, 4))),
        )


def test_fetch_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    src = write_npz(tmp_path / "src.npz")
    good = hashlib.md5(src.read_bytes()).hexdigest()
    target = tmp_path / "cache" / "pneumoniamnist.npz"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(src.as_uri(), target, md5="0" * 32)
    assert not target.exists() and not list(target.parent.glob(".*"))
    out = download_medmnist("pneumoniamnist", root=tmp_path / "cache", md5=good, url=src.as_uri())
    assert out == target and out.read_bytes() == src.read_bytes()
    # cached and valid: no second download (the URL now points nowhere)
    again = download_medmnist(
        "pneumoniamnist", root=tmp_path / "cache", md5=good, url="file:///none"
    )
    assert again == target


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(DownloadError, match="download failed"):
        download_medmnist("pneumoniamnist", root=tmp_path, url=(tmp_path / "nope.npz").as_uri())
    with pytest.raises(DownloadError, match="unknown MedMNIST flag"):
        download_medmnist("catmnist", root=tmp_path)


@pytest.mark.realdata
def test_real_pneumoniamnist(shared_data):
    ds = open_dataset(shared_data / "medmnist" / "pneumoniamnist.npz")
    assert ds.counts() == {
        "train": {"normal": 1214, "pneumonia": 3494},
        "val": {"normal": 135, "pneumonia": 389},
        "test": {"normal": 234, "pneumonia": 390},
    }


@pytest.mark.realdata
def test_real_kermany_folder(shared_data):
    ds = open_dataset(shared_data / "cxr-pneumonia-224" / "train")
    assert ds.counts()["train"] == {"NORMAL": 1341, "PNEUMONIA": 3875}
    assert ds.image(0).size == (224, 224)


def test_with_classes_maps_labels_onto_a_model_s_class_list():
    def toy(names, labels):
        return ClassificationDataset(
            name="toy",
            class_names=names,
            ids=[f"s{i}" for i in range(len(labels))],
            labels=np.array(labels),
            splits=["train"] * len(labels),
            loader=lambda i: None,
        )

    single = toy(["normal", "pneumonia"], [1, 0, 1]).with_classes(["pneumonia", "x", "normal"])
    assert single.labels.tolist() == [0, 2, 0] and single.task == "multiclass"
    assert single.counts()["train"] == {"pneumonia": 2, "x": 0, "normal": 1}
    multi = toy(["a", "b"], [[1, 0], [1, 1]]).with_classes(["b", "a"])
    assert multi.labels.tolist() == [[0, 1], [1, 1]] and multi.task == "multilabel"
    with pytest.raises(DatasetError, match=r"classes \['c'\] are not shared"):
        toy(["a", "b"], [[1, 0], [1, 1]]).with_classes(["a", "b", "c"])  # unknown, not absent
    with pytest.raises(DatasetError, match=r"classes \['b'\] are not shared"):
        toy(["a", "b"], [0, 1]).with_classes(["a", "c"])


def test_a_data_set_shows_its_size_not_every_sample() -> None:
    ds = _toy(np.array([0, 1] * 3000))
    text = repr(ds)
    assert len(text) < 200 and "n=6000" in text and "'train': 6000" in text
