"""Synthetic segmentation data sets written to disk (PNG pairs, MSD NIfTI) for the tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.image import MedicalImage
from medlabel.io import write_image


def shapes_2d(rng: np.random.Generator, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc (mask value 100) and a mid-grey square (200) on a noisy dark background."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.integers(12, size - 12, 2)
    r = rng.integers(5, 9)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    sq = np.zeros((size, size), bool)
    y0, x0 = rng.integers(2, size - 12, 2)
    sq[y0 : y0 + 9, x0 : x0 + 9] = True
    sq &= ~disc
    img = rng.normal(40, 8, (size, size))
    img[sq] = 130 + rng.normal(0, 8, sq.sum())
    img[disc] = 220 + rng.normal(0, 8, disc.sum())
    mask = np.zeros((size, size), np.uint8)
    mask[disc] = 100
    mask[sq] = 200
    return np.clip(img, 0, 255).astype(np.uint8), mask


def chest_pairs(root: Path, n: int) -> Path:
    """``root/images`` and ``root/masks`` of ``n`` synthetic radiographs: two dark lung
    ellipses on a bright field, labelled 150 (right lung) and 200 (left lung)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:128, :128]
    for i in range(n):
        img = np.full((128, 128), 200, np.uint8)
        right = ((yy - 64) / 40) ** 2 + ((xx - 40 - i) / 18) ** 2 < 1
        left = ((yy - 64) / 40) ** 2 + ((xx - 88 + i) / 18) ** 2 < 1
        img[right | left] = 60
        mask = np.zeros((128, 128), np.uint8)
        mask[right], mask[left] = 150, 200
        Image.fromarray(img).save(root / "images" / f"c{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


@pytest.fixture
def png_pairs(tmp_path: Path) -> Callable[[int], Path]:
    """Folder with ``images/`` and ``masks/`` of ``n`` synthetic PNG pairs."""

    def make(n: int = 12, size: int = 48) -> Path:
        root = tmp_path / "pairs"
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(n):
            img, mask = shapes_2d(rng, size)
            Image.fromarray(img).save(root / "images" / f"case{i:02d}.png")
            Image.fromarray(mask).save(root / "masks" / f"case{i:02d}.png")
        return root

    return make


@pytest.fixture
def msd_folder(tmp_path: Path) -> Path:
    """A tiny MSD-style 3D data set (6 cases, anisotropic, oblique) with dataset.json."""
    root = tmp_path / "Task99_Blob"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(1)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0, s, c, 0, 0, 0, 1)
    for i in range(6):
        z, y, x = np.mgrid[:12, :24, :24]
        cz, cy, cx = 6, rng.integers(9, 15), rng.integers(9, 15)
        blob = ((z - cz) * 2.0) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 36
        core = ((z - cz) * 2.0) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 9
        vol = rng.normal(100, 10, blob.shape).astype(np.float32)
        vol[blob] += 200
        lab = np.zeros(blob.shape, np.uint8)
        lab[blob] = 1
        lab[core] = 2
        geo = {"spacing": (1.0, 1.0, 2.0), "origin": (10.0, -5.0, 3.0), "direction": direction}
        write_image(
            MedicalImage(vol, modality="MR", **geo), root / "imagesTr" / f"blob_{i:03d}.nii.gz"
        )
        write_image(
            MedicalImage(lab, is_label=True, **geo), root / "labelsTr" / f"blob_{i:03d}.nii.gz"
        )
    meta = {
        "name": "blob",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "shell", "2": "core"},
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root
