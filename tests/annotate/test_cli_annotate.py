"""``medlabel annotate`` from the command line: summary, exit codes, real mixed archives."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medlabel.cli import app

runner = CliRunner()


def run(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_cli_summary_and_exit_codes(mixed_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("annotate", mixed_archive, "--out", out, "--model", "ct-lungs")
    assert result.exit_code == 0, result.output
    assert (
        "4 items: 2 done, 1 failed, 1 skipped" in result.output and "report.html" in result.output
    )
    strict = run("annotate", mixed_archive, "--out", out, "--model", "ct-lungs", "--strict")
    assert strict.exit_code == 1 and "3 resumed" in strict.output
    lonely = tmp_path / "only-bad"
    lonely.mkdir()
    (lonely / "x.nii.gz").write_bytes(b"junk")
    nothing = run("annotate", lonely, "--out", tmp_path / "o2", "--model", "ct-lungs")
    assert nothing.exit_code == 1  # nothing succeeded
    bad = run("annotate", mixed_archive, "--out", out, "--model", "no-such-model")
    assert bad.exit_code == 1 and bad.output.startswith("error:")


def test_an_input_without_images_is_an_error(tmp_path: Path) -> None:
    """An empty or mistyped folder is not a successful job with 0 items."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("annotate", empty, "--out", tmp_path / "out", "--model", "ct-lungs")
    assert result.exit_code == 1
    assert result.stderr == f"error: {empty}: no readable images found\n"
    assert not (tmp_path / "out").exists()
    (empty / "notes.txt").write_text("not an image")
    result = run("annotate", empty, "--out", tmp_path / "out", "--model", "ct-lungs")
    assert result.exit_code == 1 and "(1 file(s) that are not images)" in result.stderr


def test_an_empty_formats_list_is_refused(mixed_archive: Path, tmp_path: Path) -> None:
    """``--formats ""`` would write no masks yet report every result as done."""
    for formats in ("", " , "):
        out = tmp_path / "out"
        result = run(
            "annotate", mixed_archive, "--out", out, "--model", "ct-lungs", "--formats", formats
        )
        assert result.exit_code == 1
        assert "--formats" in result.stderr and "nifti, dicom-seg, png, coco" in result.stderr
        assert not out.exists()  # nothing written


def test_workers_and_batch_sizes_below_one_are_refused(mixed_archive: Path, tmp_path: Path) -> None:
    """``--workers 0`` ran with one reader and ``--batch-size 0 --engine ray`` divided by
    zero; both engines now refuse them before any work."""
    out = tmp_path / "out"
    for engine in ("local", "ray"):
        for option, value in (("--workers", 0), ("--workers", -3), ("--batch-size", 0)):
            result = run(
                "annotate", mixed_archive, "--out", out, "--model", "ct-lungs",
                "--engine", engine, option, value,
            )  # fmt: skip
            assert result.exit_code == 1, (engine, option, value, result.output)
            assert result.stderr == (
                f"error: Invalid value for {option}: must be at least 1, not {value}\n"
            )
            assert not out.exists()


def test_an_unreachable_ray_cluster_is_a_clean_error(mixed_archive: Path, tmp_path: Path) -> None:
    """A malformed address gave "unexpected ValueError" (exit 2); a closed port hung for
    minutes. Both are refused at once, naming the address, before any work."""
    out = tmp_path / "out"
    for address, reason in (
        ("nonsense", "the Ray address 'nonsense' is not host:port, ray://host:port or auto"),
        ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1: "),
    ):
        start = time.perf_counter()
        result = run(
            "annotate", mixed_archive, "--out", out, "--model", "ct-lungs",
            "--engine", "ray", "--ray-address", address,
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"error: {reason}"), result.stderr
        assert time.perf_counter() - start < 20 and not out.exists()


def test_more_ray_workers_than_cores_is_questioned(
    mixed_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Ray actor loads the models: a local run with more actors than cores is warned of
    (and still runs); the help calls the workers actors, not only reader threads."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    result = run(
        "annotate", mixed_archive, "--out", tmp_path / "out", "--model", "no-such-model",
        "--engine", "ray", "--workers", 3,
    )  # fmt: skip
    assert result.stderr.startswith(
        "warning: --workers 3 is more than this machine's 2 CPU cores; each Ray actor loads "
        "the models (about 450 MB each)"
    ), result.stderr
    assert result.exit_code == 1  # the unknown model, after the warning
    help_text = " ".join(run("annotate", "--help").output.replace("│", " ").split())
    assert "or Ray actors that each load the models (about 450 MB each)" in help_text


def test_segment_to_a_seg_of_an_anonymised_series_says_so(
    mixed_archive: Path, tmp_path: Path
) -> None:
    """``medlabel segment ... --out x.dcm`` of a series whose Study and Series Instance UIDs
    are empty writes the SEG with new ones and a note; it never writes empty UIDs."""
    import highdicom as hd
    import pydicom

    series = mixed_archive / "dicom" / "series1"
    for f in series.iterdir():
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = ""
        ds.SeriesInstanceUID = ""
        ds.save_as(f)
    out = tmp_path / "lungs.seg.dcm"
    result = run("segment", series, "--model", "ct-lungs", "--out", out)
    assert result.exit_code == 0, result.output
    assert "note: the source" in result.stderr and "empty StudyInstanceUID" in result.stderr
    seg = hd.seg.segread(out)
    assert seg.StudyInstanceUID and seg.ReferencedSeriesSequence[0].SeriesInstanceUID


def test_real_mixed_archive(shared_data: Path, tmp_path: Path) -> None:
    """Several real data sets together, plus a corrupt file; default model choice."""
    import highdicom as hd
    import pydicom
    import SimpleITK as sitk

    archive = tmp_path / "archive"
    archive.mkdir()
    for png in sorted((shared_data / "jsrt-lungs-224" / "images").glob("*.png"))[:2]:
        shutil.copy(png, archive / png.name)
    jpeg = sorted((shared_data / "cxr-pneumonia-224" / "train" / "PNEUMONIA").glob("*.jpeg"))[0]
    shutil.copy(jpeg, archive / jpeg.name)
    shutil.copytree(shared_data / "ct-abdomen" / "dicom-series", archive / "ct-series")
    shutil.copy(shared_data / "dicom-samples" / "RG1_UNCR.dcm", archive / "cr.dcm")
    for name in ("eCT_Supplemental.dcm", "liver.dcm"):  # an enhanced CT; a DICOM SEG
        shutil.copy(shared_data / "dicom-samples" / name, archive / name)
    hippo = sorted((shared_data / "msd-hippocampus" / "imagesTr").glob("*.nii.gz"))[0]
    shutil.copy(hippo, archive / hippo.name)
    (archive / "truncated.dcm").write_bytes((archive / "cr.dcm").read_bytes()[:3000])
    out = tmp_path / "out"
    result = run("annotate", archive, "--out", out, "--formats", "nifti,dicom-seg,png,coco")
    assert result.exit_code == 0, result.output
    with (out / "manifest.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    by = {(r["source"], r["model"]): r for r in rows}
    for source in ("cr.dcm", jpeg.name):
        assert by[(source, "cxr-pneumonia")]["status"] == "done"
        assert by[(source, "cxr-lungs")]["label"] == "lung_right|lung_left|heart"
    assert by[("truncated.dcm", "cxr-lungs")]["status"] == "failed"
    assert "truncated.dcm" in by[("truncated.dcm", "cxr-lungs")]["error"]
    assert by[("ct-series", "cxr-lungs")]["status"] == "skipped"
    assert by[("ct-series", "ct-bone")]["status"] == "done"
    hippo_rows = {r["model"]: r for r in rows if r["source"] == hippo.name}
    if "mri-hippocampus" in hippo_rows:  # an untagged crop of the size it was trained on
        assert hippo_rows["mri-hippocampus"]["label"] == "anterior|posterior"
    assert all(r["status"] == "skipped" for m, r in hippo_rows.items() if m != "mri-hippocampus")
    # NIfTI mask on SimpleITK's grid of the series
    bone = by[("ct-series", "ct-bone")]
    reader = sitk.ImageSeriesReader()
    reference = sitk.ReadImage(reader.GetGDCMSeriesFileNames(str(archive / "ct-series")))
    mask = sitk.ReadImage(str(out / bone["mask"]))
    assert mask.GetSize() == reference.GetSize()
    np.testing.assert_allclose(mask.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(mask.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(mask.GetDirection(), reference.GetDirection(), atol=1e-6)
    # the anonymised series has empty Study and Series Instance UIDs: a SEG with new ones,
    # the same for every model's SEG of that series, and a note that says so
    with (out / "manifest.jsonl").open() as fh:
        records = {(r["source"], r["model"]): r for r in map(json.loads, fh)}
    bone_record = records[("ct-series", "ct-bone")]
    assert any("empty StudyInstanceUID and SeriesInstanceUID" in n for n in bone_record["notes"])
    series_seg = hd.seg.segread(out / bone_record["outputs"]["dicom-seg"])
    study_uid = series_seg.StudyInstanceUID
    assert study_uid and series_seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    lungs_seg = hd.seg.segread(out / records[("ct-series", "ct-lungs")]["outputs"]["dicom-seg"])
    assert lungs_seg.StudyInstanceUID == study_uid
    # the enhanced CT: a SEG on its frames that decodes to the NIfTI mask, voxel for voxel
    ect = records[("eCT_Supplemental.dcm", "ct-bone")]
    assert ect["status"] == "done" and "dicom-seg" in ect["outputs"], ect["notes"]
    seg = hd.seg.segread(out / ect["outputs"]["dicom-seg"])
    source = pydicom.dcmread(archive / "eCT_Supplemental.dcm", stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    nifti = sitk.ReadImage(str(out / ect["outputs"]["nifti"]))
    labels = sitk.GetArrayFromImage(nifti)
    frames = seg.get_pixels_by_source_frame(
        source.SOPInstanceUID,
        source_frame_numbers=[1, 2],
        combine_segments=True,
        skip_overlap_checks=True,
    )
    for i, item in enumerate(source.PerFrameFunctionalGroupsSequence):
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        k = nifti.TransformPhysicalPointToIndex(ipp)[2]
        np.testing.assert_array_equal(frames[i], labels[k])
    # the DICOM SEG in the archive is passed over, not an item
    assert not any(r["source"] == "liver.dcm" for r in rows)
    cr_seg = hd.seg.segread(next((out / "masks").glob("cr.dcm-*/cxr-lungs.seg.dcm")))
    assert [s.SegmentLabel for s in cr_seg.SegmentSequence] == ["lung_right", "lung_left", "heart"]
    assert (out / "report.html").is_file()
    # COCO: one image per 2D item, whatever number of models annotated it
    coco = json.loads((out / "coco.json").read_text())
    names = [i["file_name"] for i in coco["images"]]
    assert len(names) == len(set(names)) and "cr.dcm" in names
    assert all(
        0 <= v <= image[k]
        for image in coco["images"]
        for a in coco["annotations"]
        if a["image_id"] == image["id"] and isinstance(a["segmentation"], list)
        for p in a["segmentation"]
        for j, v in enumerate(p)
        for k in [("width", "height")[j % 2]]
    )
