"""The demo runs offline on the sample files shipped with pydicom-data."""

from __future__ import annotations

import pytest

from medlabel.demo import run_demo
from medlabel.io import read_image


@pytest.mark.slow
def test_demo_on_packaged_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDLABEL_DATA", str(tmp_path / "no-shared-data"))
    index = run_demo(tmp_path / "demo")
    html = index.read_text()
    assert "chest_cr" in html and "Shared data not found" in html
    assert 'class="err"' not in html  # every sample study went through
    cr = read_image(tmp_path / "demo" / "chest_cr.nii.gz")
    assert cr.size == (1841, 1955)
    assert (tmp_path / "demo" / "chest_cr_preview.png").stat().st_size > 10_000
    assert (tmp_path / "demo" / "ct_slice_j2k_lung_window.png").exists()
    # the chest radiograph gets a lung mask on its own grid (learned model or classical recipe)
    masks = sorted((tmp_path / "demo").glob("chest_cr_cxr-lungs*.nii.gz"))
    assert masks and read_image(masks[0]).size == cr.size


@pytest.mark.slow
@pytest.mark.realdata
def test_demo_segments_shared_ct(tmp_path, shared_data):
    index = run_demo(tmp_path / "demo", shared=shared_data, include_packaged=False)
    assert 'class="err"' not in index.read_text()
    ct = read_image(tmp_path / "demo" / "ct_abdomen.nii.gz")
    lungs = read_image(tmp_path / "demo" / "ct_abdomen_ct-lungs.nii.gz")
    assert lungs.size == ct.size and lungs.spacing == ct.spacing
    assert set(lungs.array.ravel().tolist()) == {0, 1, 2}


@pytest.mark.slow
def test_demo_annotation_job_on_packaged_samples(tmp_path, monkeypatch):
    import csv

    from medlabel.demo import run_demo_annotation

    monkeypatch.setenv("MEDLABEL_DATA", str(tmp_path / "no-shared-data"))
    summary = run_demo_annotation(tmp_path / "demo", progress=False)
    assert summary.items == 4 and summary.failed == 0 and summary.report.is_file()
    with (tmp_path / "demo" / "annotation" / "manifest.csv").open() as fh:
        rows = {(r["source"].rsplit("/", 1)[-1], r["model"]): r for r in csv.DictReader(fh)}
    cr = rows[("RG1_UNCR.dcm", "cxr-lungs")]
    assert cr["status"] == "done" and cr["label"] == "lung_right|lung_left|heart"
    assert rows[("RG1_UNCR.dcm", "cxr-pneumonia")]["status"] == "done"
    assert rows[("CT_small.dcm", "cxr-pneumonia")]["status"] == "skipped"
    seg = next((tmp_path / "demo" / "annotation" / "masks").glob("*RG1_UNCR*/cxr-lungs.seg.dcm"))
    assert seg.stat().st_size > 0
