"""Plans applied to images: 3D volumes stored in any axis order reach the network alike."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.image import MedicalImage
from medlabel.preprocess.orient import axes_in_orientation, orientation_code, reorient
from medlabel.segment.fingerprint import ORIENTATION_3D, fingerprint_cases
from medlabel.segment.plan import Plan, make_plan
from medlabel.segment.preprocessing import to_native, to_network

CODES = ("RAS", "LPS", "RAI", "SAL", "PIR")


def _volume() -> MedicalImage:
    """An asymmetric blob volume (RAS, anisotropic, off-origin) and nothing symmetric about it."""
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 1, (12, 16, 20)).astype(np.float32)
    arr[2:6, 3:12, 4:9] += 5.0  # a bright block near one corner
    ras = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    return MedicalImage(arr, spacing=(0.8, 1.0, 2.5), origin=(10.0, -4.0, 7.0), direction=ras)


def _plan(orientation: str | None) -> Plan:
    return Plan(
        3, "MR", {1: "blob"}, "spacing", (0.8, 1.0, 2.5), "zscore", (16, 16, 16), 2,
        {"name": "unet", "kwargs": {}}, orientation=orientation,
    )  # fmt: skip


@pytest.mark.parametrize("code", CODES)
def test_any_stored_orientation_gives_the_network_the_same_array(code: str) -> None:
    image = _volume()
    stored = reorient(image, code)
    assert orientation_code(stored) == code
    x_ref, _ = to_network(image, _plan("RAS"))
    x, grid = to_network(stored, _plan("RAS"))
    np.testing.assert_array_equal(x, x_ref)
    # the labels come back onto the stored grid exactly, voxel for voxel
    probs = np.stack([x < 2.0, x >= 2.0]).astype(np.float32)
    labels = to_native(probs, grid, _plan("RAS"))
    assert labels.array.shape == stored.array.shape
    assert (labels.spacing, labels.origin, labels.direction) == (
        stored.spacing,
        stored.origin,
        stored.direction,
    )
    expected = (np.asarray(stored.array) - stored.array.mean()) / stored.array.std() >= 2.0
    np.testing.assert_array_equal(labels.array == 1, expected)
    assert "_native_grid" not in labels.metadata and "_work_grid" not in labels.metadata


def test_a_plan_without_orientation_takes_volumes_as_stored() -> None:
    stored = reorient(_volume(), "LPS")
    x, grid = to_network(stored, _plan(None))
    assert x.shape == stored.array.shape and "_native_grid" not in grid.metadata


def test_fingerprint_and_plan_measure_cases_in_one_orientation() -> None:
    image = _volume()
    mask = image.with_array((image.array > 2.5).astype(np.uint8), is_label=True)
    mixed = [(reorient(image, c), reorient(mask, c)) for c in CODES]
    fp = fingerprint_cases(mixed)
    assert set(fp.spacings) == {image.spacing} and set(fp.sizes) == {image.size}
    assert fp.lr_axis == 2  # consistent once reoriented: mirroring stays possible
    plan = make_plan(fp, {1: "blob"})
    assert plan.orientation == ORIENTATION_3D and plan.mirror_axes == (2,)
    flat = make_plan(fingerprint_cases([(MedicalImage(image.array[0]), None)]), {1: "a"})
    assert flat.orientation is None


@pytest.mark.parametrize("code", CODES)
def test_axes_in_orientation_match_reorienting(code: str) -> None:
    stored = reorient(_volume(), code)
    axes = axes_in_orientation(stored, "RAS")
    assert tuple(stored.size[a] for a in axes) == reorient(stored, "RAS").size
