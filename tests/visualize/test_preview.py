"""Tests of medlabel.visualize.preview: montages, mask overlays, radiological orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlabel.errors import GeometryMismatchError, MedlabelError, WriteError
from medlabel.image import MedicalImage
from medlabel.visualize.preview import (
    LABEL_COLOURS,
    MAX_PICTURE_PIXELS,
    render_preview,
    render_thumbnail,
    to_display,
)


def _rgb(picture: Image.Image) -> np.ndarray:
    assert picture.mode == "RGB"
    return np.asarray(picture).astype(np.int32)


def _reddish(rgb: np.ndarray) -> np.ndarray:
    """Pixels tinted with label 1's colour (230, 25, 75); grey and yellow text are not."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - g > 50) & (r - b > 30)


def _greenish(rgb: np.ndarray) -> np.ndarray:
    """Pixels tinted with label 2's colour (60, 180, 75)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (g - r > 30) & (g - b > 30)


def _white(rgb: np.ndarray) -> np.ndarray:
    """Bright grey pixels (the yellow slice captions have no blue, so they do not count)."""
    return (rgb > 200).all(axis=-1)


def _upsample(mask: np.ndarray, factor: int) -> np.ndarray:
    return np.kron(mask, np.ones((factor, factor), dtype=mask.dtype)).astype(bool)


def _ramp_2d() -> MedicalImage:
    yy, xx = np.mgrid[:32, :64]
    return MedicalImage((xx * 30 + yy * 5).astype(np.uint16), spacing=(1.0, 1.0), modality="DX")


def _labels_2d() -> np.ndarray:
    labels = np.zeros((32, 64), np.uint8)
    labels[5:15, 10:30] = 1
    labels[20:28, 40:60] = 2
    return labels


# ------------------------------------------------------------------------------------- 2D
def test_2d_without_mask_is_grey_and_at_physical_aspect(tmp_path: Path) -> None:
    picture = render_preview(_ramp_2d())
    assert picture.size == (512, 256)  # 64 x 32 mm, longer side 512 px
    rgb = _rgb(picture)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert not _reddish(rgb).any()
    assert rgb[:, :40].mean() < rgb[:, -40:].mean()  # ramp runs left to right
    assert rgb.max() == 255 and rgb.min() == 0  # percentile stretch


def test_2d_anisotropic_pixels_are_drawn_at_physical_size() -> None:
    img = MedicalImage(np.zeros((32, 64), np.uint8), spacing=(1.0, 2.0))  # 64 mm x 64 mm
    assert render_preview(img).size == (512, 512)
    assert render_preview(img, tile=600).size == (600, 600)


def test_2d_mask_colours_appear_exactly_where_the_mask_is() -> None:
    img = _ramp_2d()
    labels = _labels_2d()
    mask = img.with_array(labels, is_label=True)
    picture = render_preview(img, mask=mask)
    assert picture.size == (512, 256 + 18)  # plus a legend strip
    rgb = _rgb(picture)
    tile = rgb[:256]
    np.testing.assert_array_equal(_reddish(tile), _upsample(labels == 1, 8))
    np.testing.assert_array_equal(_greenish(tile), _upsample(labels == 2, 8))
    # outlines are drawn in the full label colour
    assert tuple(tile[5 * 8, 20 * 8]) == LABEL_COLOURS[0]
    assert tuple(tile[20 * 8, 50 * 8]) == LABEL_COLOURS[1]
    # outside the mask the picture is untouched grey
    outside = ~_upsample(labels > 0, 8)
    grey = np.kron(to_display(img.array), np.ones((8, 8), np.int32))
    for channel in range(3):
        np.testing.assert_array_equal(tile[..., channel][outside], grey[outside])
    # the legend shows both colours
    legend = rgb[256:]
    assert _reddish(legend).any() and _greenish(legend).any()


def test_2d_rgb_image_keeps_its_colours() -> None:
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[..., 0] = np.linspace(0, 250, 16, dtype=np.uint8)[None, :]
    img = MedicalImage(arr, spacing=(1, 1))
    rgb = _rgb(render_preview(img))
    assert rgb.shape == (512, 512, 3)
    assert rgb[:, -32:, 0].mean() > 200
    assert rgb[..., 1].max() == 0


def test_named_and_numeric_windows() -> None:
    values = np.array([-1000.0, 40.0, 240.0, 1000.0])
    assert to_display(values, (40, 400)).tolist() == [0, 127, 255, 255]
    assert to_display(values, "abdomen").tolist() == [0, 127, 255, 255]
    assert to_display(values, "lung").tolist() == [59, 236, 255, 255]
    assert to_display(np.array([np.nan, 0.0, 1.0])).tolist() == [0, 0, 255]
    assert to_display(np.full(4, 7.0)).dtype == np.uint8
    ct = MedicalImage(np.array([[-1000, 40], [240, 1000]], np.int16), spacing=(1, 1))
    rgb = _rgb(render_preview(ct, window="abdomen", tile=2))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255


# ------------------------------------------------------------------------------------- 3D
def _volume_with_mask() -> tuple[MedicalImage, np.ndarray]:
    rng = np.random.default_rng(0)
    arr = rng.normal(100, 20, (8, 24, 24)).astype(np.float32)
    labels = np.zeros((8, 24, 24), np.uint8)
    labels[2:5, 8:16, 10:20] = 1
    return MedicalImage(arr, spacing=(1, 1, 3), origin=(-5, 7, 11), modality="CT"), labels


def test_3d_mask_colours_appear_only_with_a_mask_and_only_on_the_mask() -> None:
    vol, labels = _volume_with_mask()
    plain = _rgb(render_preview(vol, slices=4, tile=96))
    assert not _reddish(plain).any()

    mask = vol.with_array(labels, is_label=True)
    picture = render_preview(vol, mask=mask, slices=4, tile=96)
    # only slices holding the mask are shown: z = 2, 3, 4
    assert picture.size == (3 * 96, 96 + 18)
    rgb = _rgb(picture)
    assert _reddish(rgb).sum() > 0
    for i, k in enumerate((2, 3, 4)):
        tile = rgb[16:96, i * 96 : (i + 1) * 96]  # below the slice caption
        expected = _upsample(labels[k] == 1, 4)[16:96]
        np.testing.assert_array_equal(_reddish(tile), expected)


def test_3d_without_mask_shows_evenly_spread_slices() -> None:
    vol, _ = _volume_with_mask()
    assert render_preview(vol, slices=4, tile=32).size == (4 * 32, 32)
    assert render_preview(vol, slices=12, tile=32).size == (4 * 32, 2 * 32)  # all 8, 4 a row


def _lps_blob_volume() -> MedicalImage:
    """LPS (identity direction) volume, bright blob in the patient's right-anterior part.

    x points to the patient's left, so the right is at low x; y points posterior, so anterior
    is at low y.
    """
    arr = np.zeros((6, 24, 32), np.int16)
    arr[:, 8:16, 3:10] = 1000
    arr[0, 18:22, 20:28] = 500  # a second, dimmer feature only in the most inferior slice
    return MedicalImage(arr, spacing=(1, 1, 2), origin=(10.0, -20.0, 30.0), modality="CT")


def _stored_flipped(image: MedicalImage, flips: tuple[bool, bool, bool]) -> MedicalImage:
    """The same voxels stored with some axes reversed (every voxel keeps its world position)."""
    arr = image.array
    direction = np.eye(3)
    corner = [0, 0, 0]
    for axis, flip in enumerate(flips):  # axis 0 = x
        if flip:
            arr = np.flip(arr, axis=2 - axis)
            direction[:, axis] *= -1
            corner[axis] = image.size[axis] - 1
    return image.with_array(
        np.ascontiguousarray(arr),
        origin=tuple(image.index_to_world(corner)),
        direction=tuple(direction.ravel()),
    )


def test_patient_right_is_drawn_on_the_left_and_anterior_at_the_top() -> None:
    vol = _lps_blob_volume()
    picture = render_preview(vol, slices=1, tile=128)
    assert picture.size == (128, 96)  # one tile, 32 x 24 mm
    bright = _white(_rgb(picture))
    rows, cols = np.nonzero(bright)
    assert bright.sum() > 100
    assert cols.max() < 64  # left half of the tile
    assert rows.max() < 72 and rows.min() >= 24  # around y = 8..16 mm of 24, from the top


def test_ras_stored_volume_renders_identically_to_lps() -> None:
    vol = _lps_blob_volume()
    ras = _stored_flipped(vol, (True, True, False))
    assert ras.direction == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    assert ras.array[0, 0, 0] == vol.array[0, -1, -1]
    # sanity: the stored array is really different, the world is the same
    assert not np.array_equal(ras.array, vol.array)
    np.testing.assert_allclose(ras.index_to_world((31, 23, 5)), vol.index_to_world((0, 0, 5)))
    for kwargs in ({"slices": 1, "tile": 128}, {"slices": 12, "tile": 64}):
        expected = _rgb(render_preview(vol, **kwargs))
        np.testing.assert_array_equal(_rgb(render_preview(ras, **kwargs)), expected)


def test_inferior_slices_come_first_whatever_the_storage_order() -> None:
    vol = _lps_blob_volume()
    lpi = _stored_flipped(vol, (False, False, True))  # slices stored superior to inferior
    expected = _rgb(render_preview(vol, slices=12, tile=64))
    np.testing.assert_array_equal(_rgb(render_preview(lpi, slices=12, tile=64)), expected)
    # the dim feature (grey 127) of the most inferior slice is in the first tile only
    assert expected.shape == (2 * 48, 4 * 64, 3)  # 6 tiles of 64 x 48 px, 4 a row
    mid_grey = []
    for i in range(6):
        tile = expected[(i // 4) * 48 : (i // 4 + 1) * 48, (i % 4) * 64 : (i % 4 + 1) * 64]
        region = tile[34:46, 38:58, 2]  # around y = 18..22, x = 20..28 (2 px per mm)
        mid_grey.append(int(((region > 60) & (region < 200)).sum()))
    assert mid_grey[0] > 50
    assert mid_grey[1:] == [0] * 5


def test_mask_is_reoriented_with_the_image() -> None:
    vol = _lps_blob_volume()
    labels = (vol.array == 1000).astype(np.uint8)
    mask = vol.with_array(labels, is_label=True)
    ras = _stored_flipped(vol, (True, True, False))
    ras_mask = _stored_flipped(mask, (True, True, False))
    assert ras_mask.is_label
    expected = _rgb(render_preview(vol, mask=mask, slices=2, tile=64))
    np.testing.assert_array_equal(
        _rgb(render_preview(ras, mask=ras_mask, slices=2, tile=64)), expected
    )
    assert _reddish(expected[:, :32]).any()  # the blob (patient's right) on the left
    assert not _reddish(expected[:48, 32:64]).any()


def test_mask_on_the_same_lattice_stored_flipped_is_reordered_not_refused() -> None:
    # a LAS NIfTI mask of an LPS DICOM series: the same voxel centres, rows stored reversed
    vol = _lps_blob_volume()
    mask = vol.with_array((vol.array == 1000).astype(np.uint8), is_label=True)
    for flips in [(False, True, False), (True, False, True)]:
        flipped = _stored_flipped(mask, flips)
        assert flipped.direction != vol.direction and flipped.origin != vol.origin
        expected = _rgb(render_preview(vol, mask=mask, slices=2, tile=64))
        np.testing.assert_array_equal(
            _rgb(render_preview(vol, mask=flipped, slices=2, tile=64)), expected
        )
    # a lattice off by a fraction of a voxel is still refused
    shifted = _stored_flipped(mask, (False, True, False))
    shifted = shifted.with_array(shifted.array, origin=(10.0, 3.5, 30.0))
    with pytest.raises(GeometryMismatchError, match="origin"):
        render_preview(vol, mask=shifted)


# --------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slices": 0}, "slices must be a whole number >= 1, got 0"),
        ({"slices": -3}, "slices must be"),
        ({"tile": 0}, "tile must be a whole number of pixels from 1 to 4096, got 0"),
        ({"tile": 100000}, "tile must be"),
        ({"tile": 4096, "slices": 12}, "montage of 6 tiles of 4096 px .* over the limit"),
    ],
)
def test_nonsense_slices_tile_and_huge_montages_are_refused_before_drawing(
    tmp_path: Path, kwargs: dict, match: str
) -> None:
    out = tmp_path / "p.png"
    with pytest.raises(MedlabelError, match=match) as caught:
        render_preview(_lps_blob_volume(), out, **kwargs)
    assert caught.value.path == out
    assert list(tmp_path.iterdir()) == []


def test_the_largest_allowed_montage_stays_under_the_pixel_limit() -> None:
    vol = _lps_blob_volume()
    picture = render_preview(vol, slices=1, tile=4096)  # one big tile is fine
    assert picture.size[0] * picture.size[1] <= MAX_PICTURE_PIXELS


@pytest.mark.parametrize(
    "change",
    [
        {"spacing": (1, 1, 2.5)},
        {"origin": (10.0, -20.0, 31.0)},
        {"direction": (-1, 0, 0, 0, -1, 0, 0, 0, 1)},
    ],
)
def test_mask_on_another_grid_is_refused(tmp_path: Path, change: dict) -> None:
    vol = _lps_blob_volume()
    mask = vol.with_array(np.zeros(vol.array.shape, np.uint8), is_label=True, **change)
    out = tmp_path / "p.png"
    with pytest.raises(GeometryMismatchError, match="mask does not lie on the image grid"):
        render_preview(vol, out, mask=mask)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_mask_of_another_size_is_refused() -> None:
    vol = _lps_blob_volume()
    mask = MedicalImage(np.zeros((6, 24, 31), np.uint8), spacing=vol.spacing, origin=vol.origin)
    with pytest.raises(GeometryMismatchError, match=r"size \(31, 24, 6\) vs image \(32, 24, 6\)"):
        render_preview(vol, mask=mask)


# --------------------------------------------------------------------------------- output
def test_output_is_a_png_written_atomically(tmp_path: Path) -> None:
    vol, labels = _volume_with_mask()
    out = tmp_path / "sub" / "preview.png"
    picture = render_preview(vol, out, mask=vol.with_array(labels, is_label=True), tile=64)
    assert [p.name for p in out.parent.iterdir()] == ["preview.png"]
    with Image.open(out) as saved:
        assert saved.format == "PNG"
        assert saved.size == picture.size
        np.testing.assert_array_equal(np.asarray(saved.convert("RGB")), np.asarray(picture))


def test_output_replaces_an_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "preview.png"
    out.write_bytes(b"old")
    render_preview(_ramp_2d(), str(out), tile=64)
    with Image.open(out) as saved:
        assert saved.format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("o.jpg", "JPEG"),
        ("o.JPEG", "JPEG"),
        ("o.png", "PNG"),
        ("o.tif", "TIFF"),
        ("o.bmp", "BMP"),
    ],
)
def test_output_format_follows_the_extension(tmp_path: Path, name: str, fmt: str) -> None:
    vol, labels = _volume_with_mask()
    picture = render_preview(vol, tmp_path / name, mask=vol.with_array(labels, is_label=True))
    render_thumbnail(vol, tmp_path / f"thumb_{name}", size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, f"thumb_{name}"])
    with Image.open(tmp_path / name) as saved, Image.open(tmp_path / f"thumb_{name}") as thumb:
        assert (saved.format, thumb.format) == (fmt, fmt)
        assert saved.size == picture.size
        drawn = np.asarray(saved.convert("RGB")).astype(np.int32)
    limit = 4.0 if fmt == "JPEG" else 0.0  # lossy, but the same picture
    assert np.abs(drawn - np.asarray(picture).astype(np.int32)).mean() <= limit


@pytest.mark.parametrize("name", ["o.nii.gz", "o.gif", "o"])
def test_output_without_a_picture_extension_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(WriteError, match=r"cannot write a picture as .*; use \.png, \.jpg"):
        render_preview(_ramp_2d(), tmp_path / name)
    with pytest.raises(WriteError, match="cannot write a picture"):
        render_thumbnail(_ramp_2d(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []
