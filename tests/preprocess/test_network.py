"""Network inputs: one function prepares training data and inference inputs alike."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess.network import InputSpec, network_input, to_uint8


def test_uint8_grey_kept_and_resized():
    arr = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
    out = network_input(MedicalImage(arr), InputSpec((32, 32)))
    assert out.shape == (1, 32, 32) and out.dtype == np.uint8
    # a horizontal ramp stays a ramp, left dark and right bright
    assert out[0, :, 0].mean() < 10 and out[0, :, -1].mean() > 50


def test_16bit_scaled_by_percentiles():
    arr = np.linspace(0, 4000, 100 * 100).reshape(100, 100).astype(np.uint16)
    out = network_input(MedicalImage(arr), InputSpec((100, 100)))[0]
    assert out.min() == 0 and out.max() == 255


def test_rgb_to_grey_and_grey_to_three_channels():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 1] = 200
    grey = network_input(MedicalImage(rgb, spacing=(1, 1)), InputSpec((20, 20), channels=1))
    assert grey.shape == (1, 20, 20) and abs(int(grey[0, 0, 0]) - round(0.587 * 200)) <= 1
    three = network_input(MedicalImage(np.full((20, 20), 7, np.uint8)), InputSpec((10, 10), 3))
    assert three.shape == (3, 10, 10) and (three == 7).all()
    colour = network_input(MedicalImage(rgb, spacing=(1, 1)), InputSpec((20, 20), channels=3))
    assert colour[1].max() == 200 and colour[0].max() == 0


def test_single_slice_volume_ok_but_not_a_real_volume():
    one = MedicalImage(np.zeros((1, 16, 16), np.uint8), spacing=(1, 1, 1))
    assert network_input(one, InputSpec((8, 8))).shape == (1, 8, 8)
    vol = MedicalImage(np.zeros((5, 16, 16), np.uint8), spacing=(1, 1, 1))
    with pytest.raises(PreprocessError, match="volume of 5 slices"):
        network_input(vol, InputSpec((8, 8)))
    assert network_input(vol, InputSpec((4, 8, 8))).shape == (1, 4, 8, 8)
    with pytest.raises(PreprocessError, match="needs a volume"):
        network_input(MedicalImage(np.zeros((8, 8))), InputSpec((4, 8, 8)))


def test_nan_and_constant_images():
    arr = np.full((8, 8), np.nan)
    with pytest.raises(PreprocessError, match=r"NaN or infinite values \(64 of 64 pixels\)"):
        to_uint8(arr)
    arr[:] = 5.0
    arr[0, 0] = np.inf  # one bad pixel is refused, not quietly set to the image's minimum
    with pytest.raises(PreprocessError, match=r"\(1 of 64 pixels\)"):
        to_uint8(arr)
    arr[0, 0] = 5.0
    assert to_uint8(arr).dtype == np.uint8  # constant: no division by zero


def test_spec_round_trip_and_validation():
    spec = InputSpec((28, 28), 1)
    assert InputSpec.from_dict(spec.to_dict()) == spec and spec.describe() == "1x28x28"
    with pytest.raises(PreprocessError):
        InputSpec((28,), 1)
    with pytest.raises(PreprocessError):
        InputSpec((28, 28), 2)
