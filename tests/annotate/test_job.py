"""The annotation job: outputs, manifest, failures, resuming after a rerun or a kill."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from medlabel.annotate import runner as runner_module
from medlabel.annotate.job import annotate
from medlabel.image import MedicalImage, same_grid
from medlabel.io import read_image, write_image
from medlabel.segment.bundle import load_segmentation_bundle

MODELS = ["ct-lungs", "cxr-pneumonia", "cxr-lungs"]


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_job_writes_masks_manifest_and_report_and_leaves_inputs_alone(
    mixed_archive: Path, tmp_path: Path
) -> None:
    before = _digests(mixed_archive)
    out = tmp_path / "out"
    s = annotate(
        mixed_archive, out, models=MODELS, formats=["nifti", "png", "coco"], progress=False
    )
    assert _digests(mixed_archive) == before  # inputs never modified
    assert (s.items, s.done, s.failed, s.ignored_files) == (4, 3, 1, 1)
    rows = _rows(out)
    assert list(rows[0])[:9] == [
        "item",
        "source",
        "modality",
        "model",
        "status",
        "error",
        "label",
        "confidence",
        "uncertainty",
    ]
    assert {"p_NORMAL", "p_PNEUMONIA", "mask", "seconds"} <= set(rows[0])
    status = {(r["source"], r["model"]): r for r in rows}
    assert len(rows) == 4 * len(MODELS)  # one row per item and model
    failed = status[("ct/corrupt.nii.gz", "ct-lungs")]
    assert failed["status"] == "failed" and "corrupt.nii.gz" in failed["error"]
    series = status[("dicom/series1", "ct-lungs")]
    assert series["label"] == "lung_right|lung_left"  # the same phantom as a DICOM series
    chest = status[("ct/chest.nii.gz", "ct-lungs")]
    assert chest["status"] == "done" and chest["label"] == "lung_right|lung_left"
    assert status[("ct/chest.nii.gz", "cxr-lungs")]["status"] == "skipped"
    photo = status[("png/photo.png", "cxr-pneumonia")]
    assert photo["status"] == "done" and photo["label"] in ("NORMAL", "PNEUMONIA")
    p = float(photo["p_NORMAL"]) + float(photo["p_PNEUMONIA"])
    assert p == pytest.approx(1.0, abs=1e-5) and 0 <= float(photo["uncertainty"]) <= 1
    # masks on the exact input grid
    mask = read_image(out / chest["mask"])
    assert same_grid(mask, read_image(mixed_archive / "ct/chest.nii.gz"))
    assert set(np.unique(mask.array)) == {0, 1, 2}
    seg_png = status[("png/photo.png", "cxr-lungs")]
    assert read_image(out / seg_png["mask"]).array.shape == (64, 64)
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["png/photo.png"]
    # JSONL has the details: volumes, outputs, model id
    details = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    lungs = next(
        d for d in details if d["source"] == "ct/chest.nii.gz" and d["model"] == "ct-lungs"
    )
    assert lungs["volumes_ml"]["lung_right"] > 0 and lungs["model_id"].startswith("ct-lungs@")
    # the "photo" is random noise: whatever its label, it lies outside the X-ray model's world
    noise = next(
        d for d in details if d["source"] == "png/photo.png" and d["model"] == "cxr-pneumonia"
    )
    assert noise["ood"] is True and noise["uncertainty"] == 1.0
    assert "out of distribution" in noise["notes"][0]
    # and at 64 x 64 pixels it is smaller than the 224-pixel radiographs the model learnt from
    assert noise["low_resolution"] is True and "low resolution: 64 x 64" in noise["notes"][1]
    report = (out / "report.html").read_text()
    assert "corrupt.nii.gz" in report and "Review queue" in report
    assert "outside the model's training distribution" in report
    assert "smaller than every image the model trained on" in report
    assert not list(out.rglob(".*.tmp-*"))


def test_rerun_resumes_and_redoes_changed_and_failed_items(
    mixed_archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    annotate(mixed_archive, out, models=["ct-lungs"], progress=False)
    again = annotate(mixed_archive, out, models=["ct-lungs"], progress=False)
    assert again.resumed == 3 and again.failed == 1  # the failed item is tried again
    photo = mixed_archive / "png" / "photo.png"
    photo.write_bytes(photo.read_bytes())  # same bytes: still resumed
    assert annotate(mixed_archive, out, models=["ct-lungs"], progress=False).resumed == 3
    nifti = mixed_archive / "ct" / "chest.nii.gz"
    image = read_image(nifti)
    from medlabel.io import write_image

    write_image(image.with_array(image.array + 1), nifti)  # changed content: redone
    third = annotate(mixed_archive, out, models=["ct-lungs"], progress=False)
    assert third.resumed == 2
    # a deleted output is noticed too
    row = next(r for r in _rows(out) if r["source"] == "ct/chest.nii.gz")
    (out / row["mask"]).unlink()
    assert annotate(mixed_archive, out, models=["ct-lungs"], progress=False).resumed == 2
    assert (out / row["mask"]).is_file()


def test_a_job_that_recorded_relative_paths_resumes_and_records_them_absolute(
    mixed_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medlabel.annotate.items import Item, content_hash

    out = tmp_path / "out"
    annotate(mixed_archive, out, models=["ct-lungs"], progress=False)
    # the journal as earlier versions wrote it: file names relative to the shell's folder
    monkeypatch.chdir(tmp_path)
    journal = out / ".medlabel" / "journal.jsonl"
    old = []
    for line in journal.read_text().splitlines():
        row = json.loads(line)
        rel = [str(Path(f).relative_to(tmp_path)) for f in row["files"]]
        item = Item(row["item"], row["source"], row["kind"], tuple(rel))
        old.append(json.dumps({**row, "files": rel, "hash": content_hash(item)}))
    journal.write_text("\n".join(old) + "\n")
    again = annotate(Path("archive"), out, models=["ct-lungs"], progress=False)
    assert again.resumed == 3 and again.failed == 1
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(Path(f).is_absolute() for r in manifest for f in r["files"])
    assert annotate(mixed_archive, out, models=["ct-lungs"], progress=False).resumed == 3


def test_a_killed_job_loses_nothing_finished(
    mixed_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = runner_module.Runner.process
    calls = {"n": 0}

    def dying(self, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while the second batch runs
        return real(self, batch)

    monkeypatch.setattr(runner_module.Runner, "process", dying)
    with pytest.raises(KeyboardInterrupt):
        annotate(mixed_archive, out, models=["ct-lungs"], batch_size=1, progress=False)
    journal = (out / ".medlabel" / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 1  # the first item was recorded as soon as it finished
    assert not (out / "manifest.csv").exists()
    monkeypatch.setattr(runner_module.Runner, "process", real)
    s = annotate(mixed_archive, out, models=["ct-lungs"], batch_size=1, progress=False)
    assert s.resumed == 1 and s.done + s.failed + s.skipped == 4
    assert len(_rows(out)) == 4 and not list(out.rglob(".*.tmp-*"))


def test_torn_journal_line_is_ignored(mixed_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    annotate(mixed_archive, out, models=["ct-lungs"], progress=False)
    with (out / ".medlabel" / "journal.jsonl").open("a") as fh:
        fh.write('{"item": "half-writ')
    assert annotate(mixed_archive, out, models=["ct-lungs"], progress=False).resumed == 3


def test_dicom_seg_from_the_job_and_bad_requests(mixed_archive: Path, tmp_path: Path) -> None:
    import highdicom as hd

    from medlabel.errors import MedlabelError

    out = tmp_path / "out"
    annotate(mixed_archive, out, models=["ct-bone"], formats=["dicom-seg"], progress=False)
    rows = {r["source"]: r for r in _rows(out)}
    series = rows["dicom/series1"]
    assert series["status"] == "done", series["error"]
    seg = hd.seg.segread(out / series["mask"])
    assert seg.SegmentSequence[0].SegmentLabel == "bone"
    details = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    chest = next(d for d in details if d["source"] == "ct/chest.nii.gz")
    assert "dicom-seg: the input is not DICOM" in chest["notes"]
    with pytest.raises(MedlabelError, match="unknown format"):
        annotate(mixed_archive, out, models=["ct-bone"], formats=["jpeg2000"], progress=False)
    with pytest.raises(MedlabelError, match="must not be the input"):
        annotate(mixed_archive, mixed_archive, models=["ct-bone"], progress=False)
    fresh = tmp_path / "fresh"
    with pytest.raises(MedlabelError, match="unknown device 'tpu'"):
        annotate(mixed_archive, fresh, models=["ct-bone"], device="tpu", progress=False)
    with pytest.raises(MedlabelError, match="the Ray engine runs on the CPU"):
        annotate(mixed_archive, fresh, device="cuda:0", engine="ray", progress=False)
    with pytest.raises(MedlabelError, match="unknown precision 'fp16'"):
        annotate(mixed_archive, fresh, precision="fp16", progress=False)
    for engine in ("local", "ray"):
        with pytest.raises(MedlabelError, match="workers must be at least 1, not 0"):
            annotate(mixed_archive, fresh, workers=0, engine=engine, progress=False)
        with pytest.raises(MedlabelError, match="batch_size must be at least 1, not -2"):
            annotate(mixed_archive, fresh, batch_size=-2, engine=engine, progress=False)
    with pytest.raises(MedlabelError, match="is not host:port"):
        annotate(mixed_archive, fresh, engine="ray", ray_address="nonsense", progress=False)
    assert not fresh.exists()  # refused before anything was written


def test_batched_2d_segmentation_equals_one_at_a_time() -> None:
    from medlabel.annotate.models import open_model
    from medlabel.image import MedicalImage

    model = open_model("cxr-lungs")
    rng = np.random.default_rng(3)
    images = [
        MedicalImage((rng.random(shape) * 255).astype(np.uint8))
        for shape in ((180, 200), (224, 224), (300, 260))
    ]
    together = model.segment_many(images)
    for image, seg in zip(images, together, strict=True):
        alone = model.segment(image)
        assert np.array_equal(seg.mask.array, alone.mask.array)
        assert seg.uncertainty == pytest.approx(alone.uncertainty, abs=1e-5)
        assert seg.unit == "cm2"  # spacing given (1 mm by default)
        counts = np.bincount(seg.mask.array.ravel(), minlength=4)
        assert seg.sizes["heart"] == pytest.approx(counts[3] / 100)


def test_sizes_are_in_pixels_when_the_image_gives_no_pixel_size(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(4)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((rng.random((224, 224)) * 255).astype(np.uint8)).save(folder / "cxr.png")
    job = tmp_path / "job"
    annotate(folder, job, models=["cxr-lungs"], progress=False)
    row = json.loads((job / "manifest.jsonl").read_text().splitlines()[-1])
    assert row["status"] == "done" and "areas_cm2" not in row
    bf16 = load_segmentation_bundle("cxr-lungs").bf16  # what drew the mask is on record
    assert row["inference"] == ("bfloat16 autocast (torch)" if bf16 else "float32")
    assert set(row["areas_px"]) == {"lung_right", "lung_left", "heart"}
    assert all(float(v).is_integer() for v in row["areas_px"].values())


def test_summary_and_report_name_the_files_passed_over(mixed_archive: Path, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    (mixed_archive / "dicom" / "liver-seg.dcm").write_bytes(
        Path(get_testdata_file("liver.dcm")).read_bytes()
    )
    out = tmp_path / "out"
    summary = annotate(mixed_archive, out, models=["ct-body"], progress=False)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["ignored_files"] == summary.ignored_files >= 1
    assert {
        "source": "dicom/liver-seg.dcm",
        "reason": "a DICOM Segmentation (SEG), not an image to annotate",
    } in saved["passed_over"]
    assert "dicom/liver-seg.dcm</code>: a DICOM Segmentation" in (out / "report.html").read_text()


def test_an_earlier_job_inside_the_archive_is_not_annotated(
    mixed_archive: Path, tmp_path: Path
) -> None:
    """Masks, overlays and thumbnails of an earlier job (or an evaluation) written into the
    archive are medlabel's outputs, not studies: a second job passes them over, once each."""
    first = annotate(mixed_archive, mixed_archive / "job1", models=["ct-body"], progress=False)
    assert any((mixed_archive / "job1" / "masks").rglob("*.nii.gz"))
    evaluation = mixed_archive / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text("{}")
    (evaluation / "report.html").write_text("<html></html>")
    write_image(MedicalImage(np.full((32, 32), 90, np.uint8)), evaluation / "roc.png")  # a plot
    second = annotate(mixed_archive, tmp_path / "job2", models=["ct-body"], progress=False)
    assert second.items == first.items
    reasons = {p["source"]: p["reason"] for p in second.passed_over}
    assert reasons["job1/"].startswith("an earlier medlabel annotation job's output")
    assert reasons["eval/"].startswith("a medlabel evaluation's output")
