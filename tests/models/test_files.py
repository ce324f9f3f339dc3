"""Bundle files: where a bundle may be written (check_bundle_target refuses what saving would
destroy), checksums, and how a bundle recognises the samples it trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlabel.models.files import (
    DESCRIPTION_FILES,
    BundleError,
    SampleIds,
    check_bundle_target,
    file_checksums,
    file_digest,
    file_digests,
    read_description,
    staging,
    trained_ids,
    verify_checksums,
    was_seen,
    write_description,
)

CLASSIFY = ("cnn", "sklearn")
SEGMENT = ("segmentation",)


def _bundle(folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "bundle.json").write_text(
        json.dumps({"format": "medlabel.bundle", "format_version": 1, "kind": kind})
    )
    (folder / "member-0.onnx").write_bytes(b"weights")
    return folder


def _refused(path: Path, kinds: tuple[str, ...], data: Path | None = None) -> str:
    with pytest.raises(BundleError) as err:
        check_bundle_target(path, kinds, data)
    assert err.value.path == path  # the --out path is named
    return err.value.reason


def test_new_paths_and_empty_folders_are_accepted(tmp_path: Path) -> None:
    assert check_bundle_target(tmp_path / "new", CLASSIFY) == tmp_path / "new"
    assert check_bundle_target(tmp_path / "a" / "b", SEGMENT) == tmp_path / "a" / "b"
    (tmp_path / "empty").mkdir()
    assert check_bundle_target(tmp_path / "empty", SEGMENT) == tmp_path / "empty"


def test_a_bundle_of_the_same_kind_is_accepted_and_replaced(tmp_path: Path) -> None:
    cnn = _bundle(tmp_path / "cnn", "cnn")
    assert check_bundle_target(cnn, CLASSIFY) == cnn
    assert check_bundle_target(_bundle(tmp_path / "classic", "sklearn"), CLASSIFY)
    assert check_bundle_target(_bundle(tmp_path / "seg", "segmentation"), SEGMENT)
    with staging(cnn) as tmp:  # the retrain flow: replaced as a whole
        (tmp / "bundle.json").write_text("{}")
    assert [p.name for p in cnn.iterdir()] == ["bundle.json"]


def test_a_plain_file_is_refused_and_kept(tmp_path: Path) -> None:
    notes = tmp_path / "f.txt"
    notes.write_text("important")
    assert "a file, not a bundle folder" in _refused(notes, CLASSIFY)
    assert notes.read_text() == "important"
    # a path below a file cannot be made either
    assert "is a file, not a folder" in _refused(notes / "bundle", CLASSIFY)


def test_a_folder_of_other_files_is_refused_and_kept(tmp_path: Path) -> None:
    keep = tmp_path / "keepdir"
    (keep / "sub" / "deeper").mkdir(parents=True)
    (keep / "notes.txt").write_text("important")
    (keep / "sub" / "deeper" / "scan.png").write_bytes(b"png")
    reason = _refused(keep, CLASSIFY)
    assert "no bundle.json" in reason and "refusing to replace it" in reason
    assert (keep / "notes.txt").read_text() == "important"
    assert (keep / "sub" / "deeper" / "scan.png").read_bytes() == b"png"
    only_folders = tmp_path / "parent"
    (only_folders / "child").mkdir(parents=True)
    assert "no bundle.json" in _refused(only_folders, SEGMENT)
    assert (only_folders / "child").is_dir()


def test_a_bundle_of_another_kind_is_refused_and_kept(tmp_path: Path) -> None:
    cnn = _bundle(tmp_path / "cnn", "cnn")
    assert "kind 'cnn', not segmentation" in _refused(cnn, SEGMENT)
    seg = _bundle(tmp_path / "seg", "segmentation")
    assert "kind 'segmentation', not cnn/sklearn" in _refused(seg, CLASSIFY)
    assert json.loads((cnn / "bundle.json").read_text())["kind"] == "cnn"
    assert (seg / "member-0.onnx").read_bytes() == b"weights"


def test_a_foreign_or_broken_bundle_json_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "bundle.json").write_text('{"kind": "cnn"}')  # not written by medlabel
    assert "not a medlabel bundle" in _refused(other, CLASSIFY)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bundle.json").write_text("{trunc")
    with pytest.raises(BundleError, match="unreadable bundle description"):
        check_bundle_target(broken, CLASSIFY)
    assert (broken / "bundle.json").read_text() == "{trunc"


def test_the_training_data_is_never_the_target(tmp_path: Path) -> None:
    data = tmp_path / "datacopy"
    (data / "normal").mkdir(parents=True)
    (data / "normal" / "0.png").write_bytes(b"png")
    assert "is the training data" in _refused(data, CLASSIFY, data)
    inside = data / "model"
    assert "lies inside the training data" in _refused(inside, CLASSIFY, data)
    assert "contains the training data" in _refused(tmp_path, CLASSIFY, data)
    beside = tmp_path / "model"  # a sibling of the data folder is fine
    assert check_bundle_target(beside, CLASSIFY, data) == beside
    # relative and absolute spellings of one folder are the same folder
    rel = Path(*[".."] * len(Path.cwd().parts)) / data.relative_to("/")
    assert "is the training data" in _refused(rel, CLASSIFY, data)
    assert (data / "normal" / "0.png").read_bytes() == b"png"


def test_a_data_file_may_have_bundles_beside_it(tmp_path: Path) -> None:
    npz = tmp_path / "chestmnist.npz"
    npz.write_bytes(b"npz")
    assert check_bundle_target(tmp_path / "model", CLASSIFY, npz) == tmp_path / "model"
    assert "is the training data" in _refused(npz, CLASSIFY, npz)
    assert check_bundle_target(tmp_path / "m", CLASSIFY, tmp_path / "no-such-data")


@pytest.mark.parametrize("name", ["cxr-pneumonia", "cxr-lungs", "mri-hippocampus"])
def test_shipped_bundles_record_checksums_and_a_damaged_file_is_refused(
    tmp_path: Path, name: str
) -> None:
    import shutil

    from medlabel.models import resolve_model

    shipped = Path(resolve_model(name))
    meta = json.loads((shipped / "bundle.json").read_text())
    files = {p.name for p in shipped.iterdir()} - DESCRIPTION_FILES
    assert file_checksums(shipped) == meta["checksums"] and set(meta["checksums"]) == files
    copy = tmp_path / name
    shutil.copytree(shipped, copy)
    weights = copy / sorted(meta["checksums"])[0]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle
    weights.write_bytes(bytes(data))
    kinds = (meta["kind"],)
    with pytest.raises(BundleError, match="damaged") as err:
        read_description(copy, kinds)
    assert err.value.path == weights
    # a bundle written before checksums were recorded is read unchecked
    (copy / "bundle.json").write_text(
        json.dumps({k: v for k, v in meta.items() if k != "checksums"})
    )
    assert read_description(copy, kinds)["kind"] == meta["kind"]


def test_writing_a_description_records_the_files_as_they_are(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"one")
    write_description(tmp_path, {"kind": "demo"}, card=lambda meta: "# demo")
    first = json.loads((tmp_path / "bundle.json").read_text())["checksums"]
    assert set(first) == {"model.onnx"}
    (tmp_path / "ood.npz").write_bytes(b"two")
    write_description(tmp_path, {"kind": "demo"}, card=lambda meta: "# demo")
    again = json.loads((tmp_path / "bundle.json").read_text())["checksums"]
    assert again["model.onnx"] == first["model.onnx"] and "ood.npz" in again
    verify_checksums(tmp_path, {"checksums": again})


def test_a_damaged_model_file_without_checksums_is_a_clear_error(tmp_path: Path) -> None:
    import shutil

    from medlabel.classify.bundle import load_bundle
    from medlabel.models import resolve_model

    copy = tmp_path / "cxr"
    shutil.copytree(resolve_model("cxr-pneumonia"), copy)
    meta = json.loads((copy / "bundle.json").read_text())
    meta.pop("checksums")  # as bundles written before checksums were recorded
    (copy / "bundle.json").write_text(json.dumps(meta))
    for name in ("member-0.onnx", "ood.npz"):
        target = copy / name
        target.write_bytes(target.read_bytes()[:500])  # truncated
        with pytest.raises(BundleError, match="cannot be loaded") as err:
            load_bundle(copy).predict_arrays(np.zeros((1, 1, 128, 128), np.uint8))
        assert err.value.path == target
        shutil.copy(resolve_model("cxr-pneumonia") / name, target)
    weights = copy / "member-0.pt"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(BundleError, match="cannot be loaded"):
        load_bundle(copy, engine="torch").torch_member(0)


def test_training_samples_are_recognised_by_their_bytes_under_any_name(tmp_path: Path) -> None:
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "export" / "cxr").mkdir(parents=True)
    original = tmp_path / "NORMAL" / "IM-0001.jpeg"
    original.write_bytes(b"\xff\xd8 pixels of one radiograph")
    copy = tmp_path / "export" / "cxr" / "study-17.jpeg"  # the same file, renamed elsewhere
    copy.write_bytes(original.read_bytes())
    other = tmp_path / "export" / "cxr" / "IM-0002.jpeg"
    other.write_bytes(b"\xff\xd8 pixels of another radiograph")
    digest = file_digest(original)
    assert digest is not None and len(digest) == 12 and file_digest(copy) == digest
    assert file_digest(other) != digest and file_digest(tmp_path / "gone.jpeg") is None
    assert file_digests([original, tmp_path / "gone.jpeg", None]) == [digest]
    # a DICOM series folder: its files' bytes in name order, hidden files left out
    series = tmp_path / "series"
    series.mkdir()
    (series / "1.dcm").write_bytes(b"slice one")
    (series / "2.dcm").write_bytes(b"slice two")
    before = file_digest(series)
    (series / ".DS_Store").write_bytes(b"finder")
    assert file_digest(series) == before
    (series / "2.dcm").write_bytes(b"slice 2!!")  # same size: the modification time tells
    assert file_digest(series) != before

    meta = {"data": {"train_ids": ["NORMAL/IM-0001.jpeg"], "train_digests": [digest]}}
    seen = trained_ids(meta)
    assert seen and "cxr/study-17.jpeg" not in seen  # the name alone does not tell
    assert seen.holds("cxr/study-17.jpeg", copy) and was_seen(seen, "cxr/study-17.jpeg", copy)
    assert not seen.holds("cxr/IM-0002.jpeg", other)
    assert seen.holds("data/normal/IM-0001.jpeg")  # still recognised by its id
    assert not was_seen({"NORMAL/IM-0001.jpeg"}, "cxr/study-17.jpeg", copy)  # plain ids
    assert SampleIds(digests=[digest])  # digests alone make a non-empty record
    assert not trained_ids({"data": {"train_ids": []}})
