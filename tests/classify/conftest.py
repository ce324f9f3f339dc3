"""Small synthetic classification data: fast to train, impossible to get right by chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.data.dataset import ClassificationDataset
from medlabel.image import MedicalImage


def blob_images(labels: np.ndarray, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Class k: a bright square in quadrant k on a noisy background."""
    rng = np.random.default_rng(seed)
    images = []
    half = size // 2
    for lab in labels:
        img = rng.integers(0, 60, (size, size)).astype(np.uint8)
        r, c = divmod(int(lab) % 4, 2)
        img[r * half : r * half + half, c * half : c * half + half] += 150
        images.append(img)
    return images


def make_dataset(n: int = 48, k: int = 2, size: int = 16, seed: int = 0) -> ClassificationDataset:
    labels = np.arange(n) % k
    images = blob_images(labels, size, seed)
    splits = np.array(["train"] * (n - n // 4) + ["test"] * (n // 4), dtype=object)
    return ClassificationDataset(
        name="blobs",
        class_names=[f"c{i}" for i in range(k)],
        ids=[f"img{i}" for i in range(n)],
        labels=labels,
        splits=splits,
        loader=lambda i: MedicalImage(images[i]),
        source={"kind": "synthetic", "path": "memory", "licence": "CC0"},
    )


@pytest.fixture
def blobs() -> ClassificationDataset:
    return make_dataset()


@pytest.fixture
def blob_folder(tmp_path: Path) -> Path:
    """Class folders of PNG files (train only), plus one corrupt file."""
    root = tmp_path / "blobs"
    labels = np.arange(40) % 2
    for i, (lab, img) in enumerate(zip(labels, blob_images(labels), strict=True)):
        folder = root / ("normal" if lab == 0 else "abnormal")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    (root / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    return root
