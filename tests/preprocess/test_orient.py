"""Tests of medlabel.preprocess.orient."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, on_lattice_of
from medlabel.preprocess.orient import orientation_code, reorient


def _marked(image: MedicalImage, index_xyz: tuple[int, ...]) -> MedicalImage:
    arr = np.zeros(image.array.shape, np.int16)
    arr[index_xyz[::-1]] = 1
    return image.with_array(arr)


def _marked_world(image: MedicalImage) -> np.ndarray:
    (hit,) = np.argwhere(image.array == 1)
    return image.index_to_world(hit[::-1])


@pytest.mark.parametrize(
    ("direction", "code"),
    [
        ((1, 0, 0, 0, 1, 0, 0, 0, 1), "LPS"),
        ((-1, 0, 0, 0, -1, 0, 0, 0, 1), "RAS"),
        ((1, 0, 0, 0, 0, 1, 0, -1, 0), "LIP"),  # a coronal acquisition
        ((0, 0, -1, 1, 0, 0, 0, -1, 0), "PIR"),  # a sagittal acquisition
    ],
)
def test_orientation_code(direction: tuple[int, ...], code: str) -> None:
    img = MedicalImage(np.zeros((3, 4, 5)), direction=direction)
    assert orientation_code(img) == code


def test_orientation_code_2d() -> None:
    assert orientation_code(MedicalImage(np.zeros((3, 3)))) == "LP"
    assert orientation_code(MedicalImage(np.zeros((3, 3)), direction=(0, 1, 1, 0))) == "PL"


@pytest.mark.parametrize("target", ["RAS", "LPS", "LIP", "PIR", "SAR"])
def test_reorient_keeps_world_positions(ct_volume: MedicalImage, target: str) -> None:
    marked = _marked(ct_volume, (3, 7, 11))
    before = _marked_world(marked)
    out = reorient(marked, target)
    assert orientation_code(out) == target
    np.testing.assert_allclose(_marked_world(out), before, atol=1e-6)
    assert sorted(out.spacing) == sorted(ct_volume.spacing)
    assert out.dtype == np.int16 and out.metadata == ct_volume.metadata


def test_reorient_every_voxel_maps_to_same_world_point(oblique_volume: MedicalImage) -> None:
    # The gradient's value tells where each voxel came from.
    out = reorient(oblique_volume, "RAS")
    for index in [(0, 0, 0), (5, 9, 2), (23, 19, 15), (11, 0, 7)]:
        world = out.index_to_world(index)
        old = np.round(oblique_volume.world_to_index(world)).astype(int)
        assert out.array[index[::-1]] == oblique_volume.array[tuple(old[::-1])]


def test_reorient_ras_to_lps_flips_arrays() -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ras = MedicalImage(
        arr, spacing=(1, 2, 3), origin=(10, 20, 30), direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1)
    )
    out = reorient(ras, "LPS")
    np.testing.assert_array_equal(out.array, arr[:, ::-1, ::-1])
    assert out.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    # first voxel now is the old voxel (3, 2, 0): world (10 - 3, 20 - 4, 30)
    assert out.origin == pytest.approx((7.0, 16.0, 30.0))


def test_reorient_labels_and_channels(label_volume: MedicalImage) -> None:
    out = reorient(label_volume, "RAI")
    assert out.is_label and out.dtype == np.uint8
    np.testing.assert_array_equal(
        np.sort(out.array, axis=None), np.sort(label_volume.array, axis=None)
    )
    rgb = MedicalImage(
        np.random.default_rng(0).integers(0, 255, (3, 4, 5, 3), dtype=np.uint8), spacing=(1, 1, 1)
    )
    out_rgb = reorient(rgb, "RAS")
    np.testing.assert_array_equal(out_rgb.array, rgb.array[:, ::-1, ::-1, :])


def test_reorient_2d(xray: MedicalImage) -> None:
    same = reorient(xray, "LPS")  # 3-letter request on 2D uses the in-plane letters
    np.testing.assert_array_equal(same.array, xray.array)
    assert same.origin == xray.origin and same.direction == xray.direction
    marked = _marked(xray, (5, 9))
    before = _marked_world(marked)
    out = reorient(marked, "RA")
    assert orientation_code(out) == "RA"
    np.testing.assert_allclose(_marked_world(out), before, atol=1e-9)
    assert reorient(xray, "PL").size == xray.size[::-1]


@pytest.mark.parametrize("code", ["LP", "LLS", "ABC", "LPSX", "lpq"])
def test_invalid_codes_3d(ct_volume: MedicalImage, code: str) -> None:
    with pytest.raises(PreprocessError, match="orientation code"):
        reorient(ct_volume, code)


@pytest.mark.parametrize("code", ["SI", "LS", "L", "SLP"])
def test_invalid_codes_2d(xray: MedicalImage, code: str) -> None:
    with pytest.raises(PreprocessError, match="orientation code"):
        reorient(xray, code)


def test_lowercase_code_accepted(ct_volume: MedicalImage) -> None:
    assert orientation_code(reorient(ct_volume, "ras")) == "RAS"


def test_on_lattice_of_moves_a_flipped_lattice_exactly(label_volume: MedicalImage) -> None:
    # the same voxel centres stored RAS and with x/z swapped (a mask saved by another tool)
    for code in ("RAS", "SPL", "LAS"):
        stored = reorient(label_volume, code)
        assert stored.origin != label_volume.origin or stored.direction != label_volume.direction
        back = on_lattice_of(stored, label_volume)
        assert back is not None and back.is_label and back.dtype == label_volume.dtype
        np.testing.assert_array_equal(back.array, label_volume.array)
        assert back.origin == label_volume.origin and back.direction == label_volume.direction


def test_on_lattice_of_refuses_other_lattices(label_volume: MedicalImage) -> None:
    ras = reorient(label_volume, "RAS")
    assert on_lattice_of(ras.with_array(ras.array, origin=(0.0, 0.0, 0.0)), label_volume) is None
    assert on_lattice_of(ras.with_array(ras.array, spacing=(1, 1, 1)), label_volume) is None
    assert on_lattice_of(ras.with_array(ras.array[:-1]), label_volume) is None
    # within the tolerance (a float32 NIfTI header): still the same lattice
    x, y, z = ras.origin
    near = ras.with_array(ras.array, origin=(x + 1e-4, y, z))
    assert on_lattice_of(near, label_volume) is not None
