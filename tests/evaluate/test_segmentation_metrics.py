"""Segmentation metrics: exact values on shapes with known answers, conventions, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.evaluate import EvaluationError
from medlabel.evaluate.segmentation import case_metrics, mask_metrics, summarize_cases
from medlabel.image import MedicalImage


def test_shifted_square_in_millimetres() -> None:
    truth = np.zeros((6, 40, 40), bool)
    truth[1:5, 10:30, 10:30] = True
    pred = np.roll(truth, 2, axis=2)  # shifted 2 voxels along x
    m = mask_metrics(pred, truth, (1.5, 1.0, 3.0))
    assert m["dice"] == pytest.approx(0.9)
    assert m["iou"] == pytest.approx(360 / 440)
    assert m["hd95_mm"] == pytest.approx(3.0)  # 2 voxels x 1.5 mm
    assert 0 < m["asd_mm"] < 3.0
    assert m["volume_true_ml"] == pytest.approx(1600 * 4.5 / 1000)
    flat = mask_metrics(pred[2], truth[2], (1.5, 1.0))  # the same in 2D: areas in cm^2
    assert flat["hd95_mm"] == pytest.approx(3.0) and flat["volume_true_ml"] == pytest.approx(6.0)
    assert m["volume_diff_pct"] == pytest.approx(0.0)


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5), bool)
    some = empty.copy()
    some[2, 2] = True
    both = mask_metrics(empty, empty)
    assert both["dice"] == 1.0 and both["hd95_mm"] == 0.0
    one = mask_metrics(empty, some)
    assert one["dice"] == 0.0 and one["hd95_mm"] is None and one["volume_diff_pct"] == -100.0
    assert mask_metrics(some, empty)["volume_diff_pct"] is None


def test_case_metrics_checks_grid_and_labels() -> None:
    a = MedicalImage(np.zeros((4, 6, 6), np.uint8), spacing=(1, 1, 2))
    b = MedicalImage(np.zeros((4, 6, 6), np.uint8), spacing=(1, 1, 3))
    with pytest.raises(EvaluationError, match="grid"):
        case_metrics(a, b, {1: "x"})
    bad = a.with_array(np.full((4, 6, 6), 7, np.uint8))
    with pytest.raises(EvaluationError, match=r"label values \[7\]"):
        case_metrics(bad, a, {1: "x"})
    with pytest.raises(EvaluationError, match="shape"):
        mask_metrics(np.zeros((2, 2)), np.zeros((3, 3)))


def test_summary_skips_undefined_and_bootstraps_dice() -> None:
    cases = {
        "a": {"lung": {"dice": 0.9, "hd95_mm": 2.0}},
        "b": {"lung": {"dice": 0.7, "hd95_mm": None}},
        "c": {"lung": {"dice": 0.8, "hd95_mm": 4.0}},
    }
    s = summarize_cases(cases, n_bootstrap=200)
    assert s["lung"]["dice"]["mean"] == pytest.approx(0.8)
    assert s["lung"]["dice"]["min"] == 0.7
    assert s["lung"]["hd95_mm"]["n"] == 2 and s["lung"]["hd95_mm"]["n_undefined"] == 1
    lo, hi = s["lung"]["dice_ci"]
    assert 0.7 - 1e-9 <= lo <= 0.8 <= hi <= 0.9 + 1e-9
