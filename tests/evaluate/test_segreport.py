"""The segmentation report names its columns for what the metrics measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlabel.evaluate.segmentation import case_metrics
from medlabel.evaluate.segreport import write_segmentation_report
from medlabel.image import MedicalImage


def _cases(shape: tuple[int, ...]) -> dict[str, dict[str, dict[str, float]]]:
    truth = np.zeros(shape, np.uint8)
    truth[(slice(2, 6),) * len(shape)] = 1
    pred = np.roll(truth, 1, axis=-1)
    metrics = case_metrics(
        MedicalImage(pred, spacing=(1.0,) * len(shape)),
        MedicalImage(truth, spacing=(1.0,) * len(shape)),
        {1: "organ"},
    )
    return {"a": metrics}


def test_areas_in_2d_and_volumes_in_3d(tmp_path: Path) -> None:
    flat = write_segmentation_report(
        tmp_path / "2d", cases=_cases((10, 10)), title="2D"
    ).read_text()
    assert "Area diff (%)" in flat and "Volume diff (%)" not in flat
    deep = write_segmentation_report(tmp_path / "3d", cases=_cases((10, 10, 10)), title="3D")
    assert "Volume diff (%)" in deep.read_text()
