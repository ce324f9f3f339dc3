"""Segmentation metrics: exact values on shapes with known answers, conventions, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.evaluate import EvaluationError
from medlabel.evaluate.segmentation import (
    case_metrics,
    distance_key,
    mask_metrics,
    summarize_cases,
    true_size,
)
from medlabel.image import SPACING_UNKNOWN, MedicalImage


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
    assert flat["hd95_mm"] == pytest.approx(3.0) and flat["area_true_cm2"] == pytest.approx(6.0)
    assert "volume_true_ml" not in flat
    assert m["volume_diff_pct"] == pytest.approx(0.0)


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5), bool)
    some = empty.copy()
    some[2, 2] = True
    both = mask_metrics(empty, empty, (1, 1))
    assert both["dice"] == 1.0 and both["hd95_mm"] == 0.0
    one = mask_metrics(empty, some, (1, 1))
    assert one["dice"] == 0.0 and one["hd95_mm"] is None and one["volume_diff_pct"] == -100.0
    assert mask_metrics(some, empty)["volume_diff_pct"] is None


def test_without_a_pixel_size_the_figures_are_in_pixels_and_say_so() -> None:
    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1
    pred = np.roll(truth, 2, axis=1)
    known = case_metrics(
        MedicalImage(pred, spacing=(0.5, 0.5)), MedicalImage(truth, spacing=(0.5, 0.5)), {1: "x"}
    )["x"]
    assert known["hd95_mm"] == pytest.approx(1.0) and known["area_true_cm2"] == pytest.approx(1.0)
    # a PNG mask (no pixel size): the same shapes, in pixels, under names that say so
    png = MedicalImage(truth, metadata={SPACING_UNKNOWN: True})
    m = case_metrics(MedicalImage(pred), png, {1: "x"})["x"]
    assert m["hd95_px"] == pytest.approx(2.0) and m["area_true_px"] == 400
    assert not {"hd95_mm", "asd_mm", "area_true_cm2"} & set(m)
    assert m["dice"] == known["dice"]
    assert distance_key(m) == ("hd95_px", "px") and distance_key(known, "asd") == ("asd_mm", "mm")
    cube = mask_metrics(np.ones((2, 3, 4), bool), np.ones((2, 3, 4), bool), None)
    assert cube["volume_true_voxels"] == 24
    # sizes in one base unit, whatever the key (old 2D bundles stored cm² as volume_true_ml)
    assert true_size(known, 2) == pytest.approx(100.0) and true_size(m, 2) == 400
    assert true_size({"volume_true_ml": 1.0}, 2) == 100.0
    assert true_size({"volume_true_ml": 1.0}, 3) == 1000.0 and true_size({"dice": 1}, 3) is None


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
