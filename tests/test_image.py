"""Tests of medlabel.image: validation, shape properties, SimpleITK conversion, geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medlabel.image import SPACING_UNKNOWN, MedicalImage, on_lattice_of, same_grid


def _rotation(z_deg: float = 30.0, x_deg: float = 20.0) -> np.ndarray:
    """A proper rotation (det +1) that is not axis-aligned: about z, then about x."""
    cz, sz = np.cos(np.radians(z_deg)), np.sin(np.radians(z_deg))
    cx, sx = np.cos(np.radians(x_deg)), np.sin(np.radians(x_deg))
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    return rx @ rz


OBLIQUE = tuple(_rotation().ravel())


def _oblique_image() -> MedicalImage:
    """7 x 6 x 5 (x, y, z) int16 volume, anisotropic spacing, oblique direction."""
    arr = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7) - 100
    return MedicalImage(
        arr,
        spacing=(0.7, 1.3, 2.9),
        origin=(-12.5, 30.25, 101.0),
        direction=OBLIQUE,
        modality="MR",
    )


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "spacing",
    [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, float("nan"), 1.0), (1.0, 1.0, float("inf"))],
)
def test_non_positive_or_non_finite_spacing_is_rejected(spacing: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="spacing must be positive"):
        MedicalImage(np.zeros((2, 3, 4)), spacing=spacing)


def test_wrong_number_of_spacing_values_is_rejected() -> None:
    with pytest.raises(ValueError, match="origin must have 3 values"):
        MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 1), origin=(0, 0))
    with pytest.raises(ValueError, match="direction must have 4 values"):
        MedicalImage(np.zeros((3, 4)), spacing=(1, 1), direction=np.eye(3).ravel())


@pytest.mark.parametrize(
    "direction",
    [
        (1.0, 0.0, 0.0, 2.0),  # not unit length
        (1.0, 0.5, 0.0, 1.0),  # shear: columns not orthogonal
        (1.0, 0.0, 1.0, 0.0),  # both axes point the same way
        (0.0, 0.0, 0.0, 0.0),
    ],
)
def test_non_orthonormal_direction_is_rejected(direction: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="not orthonormal"):
        MedicalImage(np.zeros((3, 4)), spacing=(1, 1), direction=direction)


def test_reflections_and_slightly_noisy_directions_are_accepted() -> None:
    flipped = MedicalImage(np.zeros((3, 4)), spacing=(1, 1), direction=(-1, 0, 0, 1))
    assert flipped.direction == (-1.0, 0.0, 0.0, 1.0)
    noisy = np.asarray(OBLIQUE) + 1e-5  # DICOM headers carry ~6 decimals
    MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 1), direction=noisy)


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [
        ((5,), ()),  # 1D
        ((2, 3, 4, 5), ()),  # 4D without spacing: cannot tell
        ((2, 3, 4, 5), (1.0, 1.0)),  # 2D image with two extra axes
        ((2, 3, 4, 5, 3), (1.0, 1.0, 1.0)),
        ((4,), (1.0, 1.0)),  # too few axes for 2D
        ((), ()),
    ],
)
def test_array_that_does_not_fit_the_dimension_is_rejected(
    shape: tuple[int, ...], spacing: tuple[float, ...]
) -> None:
    with pytest.raises(ValueError, match="shape"):
        MedicalImage(np.zeros(shape), spacing=spacing)


def test_dimension_is_inferred_from_direction_when_spacing_is_absent() -> None:
    img = MedicalImage(np.zeros((3, 4)), direction=(0, 1, 1, 0))
    assert img.ndim == 2
    assert img.spacing == (1.0, 1.0)
    with pytest.raises(ValueError, match="does not fit a 3D image"):
        MedicalImage(np.zeros((3, 4)), direction=np.eye(3).ravel())


# --------------------------------------------------------------------------- shape props
def test_2d_scalar_image_properties() -> None:
    img = MedicalImage(np.zeros((48, 40), np.uint16), spacing=(0.2, 0.25))
    assert (img.ndim, img.channels, img.size) == (2, 0, (40, 48))
    assert img.origin == (0.0, 0.0)
    assert img.direction == (1.0, 0.0, 0.0, 1.0)
    assert img.dtype == np.uint16


def test_3d_scalar_image_properties_and_defaults() -> None:
    img = MedicalImage(np.zeros((4, 5, 6), np.int16))
    assert (img.ndim, img.channels, img.size) == (3, 0, (6, 5, 4))
    assert img.spacing == (1.0, 1.0, 1.0)
    assert img.origin == (0.0, 0.0, 0.0)
    assert img.direction == tuple(np.eye(3).ravel())


def test_2d_rgb_image_properties() -> None:
    img = MedicalImage(np.zeros((32, 24, 3), np.uint8), spacing=(0.5, 0.5))
    assert (img.ndim, img.channels, img.size) == (2, 3, (24, 32))


def test_3d_multichannel_image_properties() -> None:
    img = MedicalImage(np.zeros((4, 5, 6, 2), np.float32), spacing=(1, 1, 2))
    assert (img.ndim, img.channels, img.size) == (3, 2, (6, 5, 4))


def test_bool_array_and_numpy_geometry_are_normalised() -> None:
    img = MedicalImage(
        np.array([[True, False], [False, True]]),
        spacing=np.array([1, 2]),
        origin=np.array([0.5, -1.5]),
        direction=np.array([[0, 1], [1, 0]]),
    )
    assert img.dtype == np.uint8
    assert img.array.tolist() == [[1, 0], [0, 1]]
    assert (img.spacing, img.origin) == ((1.0, 2.0), (0.5, -1.5))
    assert img.direction == (0.0, 1.0, 1.0, 0.0)
    assert all(type(v) is float for v in img.spacing + img.origin + img.direction)


def test_metadata_is_copied_not_shared() -> None:
    meta = {"PatientID": "A"}
    img = MedicalImage(np.zeros((2, 2)), spacing=(1, 1), metadata=meta)
    meta["PatientID"] = "B"
    assert img.metadata == {"PatientID": "A"}


def test_with_array_keeps_grid_and_applies_changes() -> None:
    img = _oblique_image()
    out = img.with_array(img.array.astype(np.float32) * 2, is_label=True, modality="CT")
    assert same_grid(img, out)
    assert (out.dtype, out.is_label, out.modality) == (np.float32, True, "CT")
    assert img.is_label is False  # original untouched (frozen dataclass)


def test_an_unknown_pixel_size_stays_with_the_grid() -> None:
    png = MedicalImage(np.zeros((4, 5), np.uint8), metadata={SPACING_UNKNOWN: True, "path": "x"})
    assert not png.spacing_known and _oblique_image().spacing_known
    relabelled = png.with_array(png.array, metadata={"labels": {1: "x"}})
    assert not relabelled.spacing_known and relabelled.metadata["labels"] == {1: "x"}
    assert png.with_array(png.array, spacing=(0.2, 0.2), metadata={}).spacing_known


# ------------------------------------------------------------------------------ SimpleITK
def test_sitk_round_trip_is_exact_for_oblique_volume() -> None:
    img = _oblique_image()
    sitk_image = img.to_sitk()
    assert sitk_image.GetSize() == img.size
    assert sitk_image.GetSpacing() == img.spacing
    assert sitk_image.GetOrigin() == img.origin
    assert sitk_image.GetDirection() == img.direction
    assert sitk_image.GetPixelID() == sitk.sitkInt16
    # ITK index (x, y, z) is array[z, y, x]
    assert sitk_image.GetPixel(6, 2, 3) == int(img.array[3, 2, 6])
    back = MedicalImage.from_sitk(sitk_image, modality="MR", metadata={"k": "v"}, is_label=True)
    assert back.spacing == img.spacing
    assert back.origin == img.origin
    assert back.direction == img.direction
    assert back.dtype == img.dtype
    np.testing.assert_array_equal(back.array, img.array)
    assert (back.modality, back.metadata, back.is_label) == ("MR", {"k": "v"}, True)


def test_sitk_round_trip_2d_rgb_is_a_vector_image() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    c, s = np.cos(0.4), np.sin(0.4)
    img = MedicalImage(arr, spacing=(0.3, 0.6), origin=(2.0, -3.0), direction=(c, -s, s, c))
    sitk_image = img.to_sitk()
    assert sitk_image.GetDimension() == 2
    assert sitk_image.GetNumberOfComponentsPerPixel() == 3
    assert sitk_image.GetSize() == (7, 5)
    back = MedicalImage.from_sitk(sitk_image)
    assert (back.ndim, back.channels) == (2, 3)
    assert back.direction == img.direction
    np.testing.assert_array_equal(back.array, arr)


def test_to_sitk_converts_float16_to_float32() -> None:
    img = MedicalImage(np.full((2, 3), 1.5, np.float16), spacing=(1, 1))
    sitk_image = img.to_sitk()
    assert sitk_image.GetPixelID() == sitk.sitkFloat32
    assert sitk.GetArrayFromImage(sitk_image).tolist() == [[1.5] * 3] * 2


# ------------------------------------------------------------------------------- geometry
def test_index_to_world_matches_simpleitk_for_oblique_anisotropic_image() -> None:
    img = _oblique_image()
    sitk_image = img.to_sitk()
    for index in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (6, 5, 4), (2.5, -1.25, 3.75)]:
        expected = sitk_image.TransformContinuousIndexToPhysicalPoint([float(i) for i in index])
        np.testing.assert_allclose(img.index_to_world(index), expected, rtol=0, atol=1e-9)


def test_index_to_world_steps_by_spacing_along_direction_columns() -> None:
    img = _oblique_image()
    step_z = img.index_to_world((0, 0, 1)) - img.index_to_world((0, 0, 0))
    np.testing.assert_allclose(step_z, 2.9 * _rotation()[:, 2], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(step_z), 2.9)


def test_world_to_index_inverts_index_to_world_and_matches_simpleitk() -> None:
    img = _oblique_image()
    sitk_image = img.to_sitk()
    rng = np.random.default_rng(1)
    for index in rng.uniform(-3, 9, size=(10, 3)):
        world = img.index_to_world(index)
        np.testing.assert_allclose(img.world_to_index(world), index, rtol=0, atol=1e-9)
        expected = sitk_image.TransformPhysicalPointToContinuousIndex(world.tolist())
        np.testing.assert_allclose(img.world_to_index(world), expected, rtol=0, atol=1e-9)


def test_affine_agrees_with_index_to_world() -> None:
    img = _oblique_image()
    aff = img.affine()
    assert aff.shape == (4, 4)
    np.testing.assert_array_equal(aff[3], [0, 0, 0, 1])
    index = np.array([2.0, 3.5, -1.0])
    np.testing.assert_allclose(aff @ np.append(index, 1.0), np.append(img.index_to_world(index), 1))
    img2 = MedicalImage(np.zeros((3, 4)), spacing=(2, 3), origin=(5, 6))
    np.testing.assert_array_equal(img2.affine(), [[2, 0, 5], [0, 3, 6], [0, 0, 1]])


def test_2d_geometry_matches_simpleitk() -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    img = MedicalImage(
        np.zeros((5, 7)), spacing=(0.2, 0.5), origin=(1.0, -2.0), direction=(c, s, -s, c)
    )
    expected = img.to_sitk().TransformContinuousIndexToPhysicalPoint((3.0, 4.0))
    np.testing.assert_allclose(img.index_to_world((3, 4)), expected, atol=1e-12)
    np.testing.assert_allclose(img.world_to_index(expected), (3, 4), atol=1e-12)


# ------------------------------------------------------------------------------ same_grid
def test_same_grid_true_for_same_geometry_and_small_noise() -> None:
    img = _oblique_image()
    assert same_grid(img, img.with_array(np.zeros(img.array.shape, np.uint8)))
    nudged = img.with_array(img.array, origin=tuple(o + 1e-6 for o in img.origin))
    assert same_grid(img, nudged)


@pytest.mark.parametrize(
    "change",
    [
        {"array": np.zeros((5, 6, 8), np.int16)},
        {"spacing": (0.7, 1.3, 3.0)},
        {"origin": (-12.5, 30.25, 101.5)},
        {"direction": tuple(np.eye(3).ravel())},
    ],
)
def test_same_grid_false_when_size_spacing_origin_or_direction_differs(change: dict) -> None:
    img = _oblique_image()
    array = change.pop("array", img.array)
    assert not same_grid(img, img.with_array(array, **change))


def test_same_grid_2d_compares_size_but_not_channels() -> None:
    a = MedicalImage(np.zeros((3, 4)), spacing=(1, 1))
    b = MedicalImage(np.zeros((4, 3)), spacing=(1, 1))
    assert not same_grid(a, b)
    # channels do not change the grid
    assert same_grid(a, MedicalImage(np.zeros((3, 4, 3)), spacing=(1, 1)))


# ---------------------------------------------------------------------------------- repr
def test_repr_hides_metadata_values() -> None:
    img = MedicalImage(
        np.zeros((2, 2)),
        spacing=(1, 1),
        modality="CT",
        metadata={"PatientID": "SECRET-PID-4711", "PatientName": "Doe^Jane"},
    )
    text = repr(img)
    assert "SECRET-PID-4711" not in text
    assert "Doe^Jane" not in text
    assert "metadata" not in text
    assert "CT" in text  # repr is otherwise informative
    assert img.metadata["PatientID"] == "SECRET-PID-4711"


def test_on_lattice_of_undoes_any_axis_permutation_and_flip_exactly() -> None:
    """Every voxel keeps its world position: the value found at a world point is the same
    before and after, for permuted and flipped storage, oblique directions and channels."""
    rng = np.random.default_rng(3)
    theta = 0.3
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    reference = MedicalImage(
        np.zeros((4, 5, 6)),
        spacing=(0.7, 0.8, 2.5),
        origin=(10, -5, 30),
        direction=tuple(rot.ravel()),
    )
    values = rng.integers(0, 9, (4, 5, 6, 2)).astype(np.int16)
    truth = reference.with_array(values)
    # store the same voxels with ITK axes (z, x, y), z and y reversed
    stored_array = np.transpose(values, (1, 2, 0, 3))[::-1, :, ::-1]  # NumPy [y, x, z, c]
    axes = [2, 0, 1]  # stored ITK axis j runs along reference axis axes[j]
    flips = [-1, 1, -1]
    matrix = reference.direction_matrix[:, axes] * np.array(flips)
    corner = [0, 4, 3]  # reference index of the stored first voxel (x, y, z)
    stored = MedicalImage(
        stored_array,
        spacing=tuple(reference.spacing[k] for k in axes),
        origin=tuple(reference.index_to_world(corner)),
        direction=tuple(matrix.ravel()),
    )
    assert stored.channels == 2 and not same_grid(stored, reference)
    for index in [(0, 0, 0), (3, 2, 1), (5, 4, 3)]:
        point = reference.index_to_world(index)
        i, j, k = np.round(stored.world_to_index(point)).astype(int)
        np.testing.assert_array_equal(stored.array[k, j, i], truth.array[index[::-1]])
    back = on_lattice_of(stored, reference)
    assert back is not None and same_grid(back, reference)
    np.testing.assert_array_equal(back.array, values)
    shifted = stored.with_array(stored.array, origin=tuple(np.add(stored.origin, (0.1, 0, 0))))
    assert on_lattice_of(shifted, reference) is None  # a tenth of a millimetre off: refused
    assert on_lattice_of(stored.with_array(stored_array[:, :-1]), reference) is None
