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
