"""Tests of medlabel.preprocess.window."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess.window import WINDOW_PRESETS, window


def test_required_presets_have_standard_values() -> None:
    assert WINDOW_PRESETS["lung"] == (-600, 1500)
    assert WINDOW_PRESETS["mediastinum"] == (40, 400)
    assert WINDOW_PRESETS["bone"] == (400, 1800)
    assert WINDOW_PRESETS["brain"] == (40, 80)
    assert WINDOW_PRESETS["liver"] == (60, 150)
    assert WINDOW_PRESETS["abdomen"] == (40, 400)
    assert "soft-tissue" in WINDOW_PRESETS
    assert all(width > 0 for _, width in WINDOW_PRESETS.values())


def test_lung_window_values_and_geometry(ct_volume: MedicalImage) -> None:
    out = window(ct_volume, "lung")
    assert out.dtype == np.float32
    assert same_grid(out, ct_volume)
    assert (out.modality, out.metadata, out.is_label) == ("CT", ct_volume.metadata, False)
    lo = -600 - 750
    expected = np.clip((ct_volume.array.astype(float) - lo) / 1500, 0, 1)
    np.testing.assert_allclose(out.array, expected, atol=1e-6)
    # air (-1000 HU) is inside the lung window, bone (700 HU) is clipped to white
    assert out.array[0, 0, 0] == pytest.approx(350 / 1500)
    assert out.array[16, 16, 16] == 1.0


def test_uint8_output_covers_full_range() -> None:
    img = MedicalImage(np.array([[-200.0, -120.0, 40.0, 240.0, 3000.0]]), spacing=(1, 1))
    out = window(img, "mediastinum", output="uint8")
    assert out.dtype == np.uint8
    assert out.array.tolist() == [[0, 26, 128, 255, 255]]


def test_explicit_level_width_override_preset() -> None:
    img = MedicalImage(np.array([[0.0, 100.0, 200.0]]), spacing=(1, 1))
    assert window(img, level=100, width=200).array.tolist() == [[0.0, 0.5, 1.0]]
    # width overrides the brain preset's 80, level stays 40
    out = window(img, "brain", width=160)
    np.testing.assert_allclose(out.array, [[0.25, 0.875, 1.0]])


def test_preset_names_are_forgiving() -> None:
    img = MedicalImage(np.zeros((2, 2)), spacing=(1, 1))
    np.testing.assert_array_equal(
        window(img, "Soft_Tissue").array, window(img, "soft-tissue").array
    )


def test_unknown_preset_lists_valid_names() -> None:
    img = MedicalImage(np.zeros((2, 2)), spacing=(1, 1))
    with pytest.raises(PreprocessError, match=r"unknown window preset 'heart'.*lung.*mediastinum"):
        window(img, "heart")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"level": 40}, {"width": 400}, {"level": 0, "width": 0}, {"level": 0, "width": -5}],
)
def test_missing_or_bad_window_raises(kwargs: dict[str, float]) -> None:
    img = MedicalImage(np.zeros((2, 2)), spacing=(1, 1))
    with pytest.raises(PreprocessError):
        window(img, **kwargs)


def test_bad_output_raises() -> None:
    img = MedicalImage(np.zeros((2, 2)), spacing=(1, 1))
    with pytest.raises(PreprocessError, match="output"):
        window(img, "lung", output="uint16")  # type: ignore[arg-type]


def test_label_image_refused(label_volume: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="label image"):
        window(label_volume, "lung")


def test_nan_becomes_black_in_uint8() -> None:
    img = MedicalImage(np.array([[np.nan, 40.0]]), spacing=(1, 1))
    assert window(img, "brain", output="uint8").array.tolist() == [[0, 128]]
