"""Synthetic phantoms shared by the preprocessing tests (small, deterministic, fast)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from medlabel.image import MedicalImage

# A proper rotation (det +1) that is not axis-aligned: 30 degrees about z, then 20 about x.
_cz, _sz = np.cos(np.radians(30)), np.sin(np.radians(30))
_cx, _sx = np.cos(np.radians(20)), np.sin(np.radians(20))
OBLIQUE = (
    np.array([[1, 0, 0], [0, _cx, -_sx], [0, _sx, _cx]])
    @ np.array([[_cz, -_sz, 0], [_sz, _cz, 0], [0, 0, 1]])
).ravel()


def ball(shape: Sequence[int], center: Sequence[float], radius: float) -> np.ndarray:
    """Boolean ball (or disc) in array index space."""
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    dist2 = sum((g - c) ** 2 for g, c in zip(grids, center, strict=True))
    return dist2 <= radius**2


@pytest.fixture
def make_ball() -> Callable[[Sequence[int], Sequence[float], float], np.ndarray]:
    """The :func:`ball` builder, for tests that need their own shapes."""
    return ball


@pytest.fixture
def ct_volume() -> MedicalImage:
    """32^3 int16 CT: air, a soft-tissue ball (40 HU) with a bone core (700 HU).

    Anisotropic spacing, non-zero origin, metadata that must travel along.
    """
    arr = np.full((32, 32, 32), -1000, np.int16)
    arr[ball(arr.shape, (15.5, 15.5, 15.5), 11)] = 40
    arr[ball(arr.shape, (15.5, 15.5, 15.5), 4)] = 700
    return MedicalImage(
        arr,
        spacing=(0.8, 0.9, 2.0),
        origin=(-12.5, 30.0, 100.0),
        modality="CT",
        metadata={"PatientID": "PHANTOM", "SeriesInstanceUID": "1.2.3"},
    )


@pytest.fixture
def oblique_volume() -> MedicalImage:
    """24 x 20 x 16 float32 gradient with an oblique direction and odd spacing."""
    z, y, x = np.mgrid[:16, :20, :24].astype(np.float32)
    arr = (3 * x + 2 * y + z).astype(np.float32)
    return MedicalImage(
        arr,
        spacing=(1.1, 0.7, 2.5),
        origin=(5.0, -7.0, 12.0),
        direction=tuple(OBLIQUE),
        modality="MR",
        metadata={"SeriesDescription": "gradient"},
    )


@pytest.fixture
def label_volume() -> MedicalImage:
    """32^3 uint8 label map: class 1 ball, class 2 ball inside it."""
    arr = np.zeros((32, 32, 32), np.uint8)
    arr[ball(arr.shape, (16, 14, 18), 9)] = 1
    arr[ball(arr.shape, (16, 14, 18), 3)] = 2
    return MedicalImage(arr, spacing=(0.8, 0.9, 2.0), origin=(1.0, 2.0, 3.0), is_label=True)


@pytest.fixture
def xray() -> MedicalImage:
    """48 x 40 uint16 2D radiograph-like image: a bright disc on a ramp."""
    _, xx = np.mgrid[:48, :40]
    arr = 200 + 10 * xx + 2000 * ball((48, 40), (20, 22), 8)
    return MedicalImage(
        arr.astype(np.uint16), spacing=(0.2, 0.25), origin=(3.0, 4.0), modality="DX"
    )


@pytest.fixture
def rgb_image() -> MedicalImage:
    """32 x 24 uint8 RGB image whose channels differ (red ramp, green disc, blue constant)."""
    _, xx = np.mgrid[:32, :24]
    arr = np.zeros((32, 24, 3), np.uint8)
    arr[..., 0] = (xx * 10).astype(np.uint8)
    arr[..., 1] = 200 * ball((32, 24), (16, 12), 6)
    arr[..., 2] = 77
    return MedicalImage(arr, spacing=(0.5, 0.5), origin=(-1.0, 2.0), modality="XC")
