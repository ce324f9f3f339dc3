"""``medlabel annotate`` from the command line: summary, exit codes, real mixed archives."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
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
    # DICOM SEG parsed back: references the source series, labelled segment, same voxels
    seg_path = next((out / "masks").glob("ct-series-*/ct-bone.seg.dcm"))
    seg = hd.seg.segread(seg_path)
    first = pydicom.dcmread(sorted((archive / "ct-series").iterdir())[0])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == first.SeriesInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["bone"]
    files = reader.GetGDCMSeriesFileNames(str(archive / "ct-series"))
    uids = [pydicom.dcmread(f).file_meta.MediaStorageSOPInstanceUID for f in files]
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, skip_overlap_checks=True
    )
    np.testing.assert_array_equal(frames, sitk.GetArrayFromImage(mask))
    cr_seg = hd.seg.segread(next((out / "masks").glob("cr.dcm-*/cxr-lungs.seg.dcm")))
    assert [s.SegmentLabel for s in cr_seg.SegmentSequence] == ["lung_right", "lung_left", "heart"]
    assert (out / "coco.json").is_file() and (out / "report.html").is_file()
