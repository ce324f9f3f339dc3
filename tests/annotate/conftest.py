"""Fixtures for the annotation job: a small mixed archive built from synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.segment.recipes.ct import chest_phantom


@pytest.fixture
def mixed_archive(tmp_path: Path, make_series) -> Path:  # type: ignore[no-untyped-def]
    """``archive/`` with a chest CT phantom as NIfTI and as a DICOM series,
    a PNG, a note, and a corrupt NIfTI."""
    root = tmp_path / "archive"
    write_image(chest_phantom()[0], root / "ct" / "chest.nii.gz")
    phantom = chest_phantom()[0]
    hu = np.asarray(phantom.array)
    make_series(
        "archive/dicom/series1",
        n=hu.shape[0],
        step=phantom.spacing[2],
        shape=hu.shape[1:],
        volume=(hu + 1024).clip(0, 4095).astype(np.int64),
        pixel_spacing=phantom.spacing[:2][::-1],
    )
    rng = np.random.default_rng(0)
    write_image(
        MedicalImage((rng.random((64, 64)) * 255).astype(np.uint8)), root / "png" / "photo.png"
    )
    (root / "notes.txt").write_text("not an image")
    (root / "ct" / "corrupt.nii.gz").write_bytes(b"\x1f\x8b broken")
    return root
