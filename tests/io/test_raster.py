"""Tests of medlabel.io.raster: PNG, JPEG, TIFF and BMP through Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medlabel.errors import ReadError, WriteError
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io import read_image, read_label, write_image
from medlabel.io.raster import read_raster, write_raster

RNG = np.random.default_rng(0)


def _grey8(shape: tuple[int, int] = (20, 30)) -> np.ndarray:
    arr = RNG.integers(0, 256, shape, dtype=np.uint8)
    arr[0, 0], arr[-1, -1] = 0, 255
    return arr


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------ reading (Pillow)
def test_png_8bit_written_by_pillow(tmp_path: Path) -> None:
    arr = _grey8()
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = read_raster(tmp_path / "a.png")
    assert (img.ndim, img.channels, img.size, img.dtype) == (2, 0, (30, 20), np.uint8)
    np.testing.assert_array_equal(img.array, arr)
    assert img.spacing == (1.0, 1.0)  # no DPI: 1 mm
    assert img.origin == (0.0, 0.0)
    assert img.metadata["format"] == "png"
    assert img.is_label is False


def test_png_16bit_written_by_pillow(tmp_path: Path) -> None:
    arr = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    arr[0, 0], arr[-1, -1] = 0, 65535
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = read_raster(tmp_path / "a.png")
    assert (img.channels, img.dtype) == (0, np.uint16)
    np.testing.assert_array_equal(img.array, arr)


def test_png_rgb_keeps_three_distinct_channels(tmp_path: Path) -> None:
    arr = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "rgb.png")
    img = read_raster(tmp_path / "rgb.png")
    assert (img.ndim, img.channels, img.size) == (2, 3, (30, 20))
    np.testing.assert_array_equal(img.array, arr)


def test_png_rgba_opaque_becomes_rgb_and_translucent_keeps_alpha(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    opaque = np.concatenate([rgb, np.full((20, 30, 1), 255, np.uint8)], axis=-1)
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "opaque.png")
    img = read_raster(tmp_path / "opaque.png")
    assert img.channels == 3
    np.testing.assert_array_equal(img.array, rgb)

    translucent = opaque.copy()
    translucent[3, 4, 3] = 128
    Image.fromarray(translucent, mode="RGBA").save(tmp_path / "alpha.png")
    img = read_raster(tmp_path / "alpha.png")
    assert img.channels == 4
    np.testing.assert_array_equal(img.array, translucent)


def test_png_palette_is_expanded_to_its_colours(tmp_path: Path) -> None:
    index = RNG.integers(0, 3, (20, 30), dtype=np.uint8)
    pal = Image.fromarray(index, mode="L").convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.putdata(index.ravel().tolist())
    pal.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    img = read_raster(tmp_path / "pal.png")
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    assert img.channels == 3
    np.testing.assert_array_equal(img.array, colours[index])


def test_png_grey_palette_collapses_to_one_channel(tmp_path: Path) -> None:
    index = RNG.integers(0, 4, (10, 12), dtype=np.uint8)
    pal = Image.new("P", (12, 10))
    pal.putpalette([0, 0, 0, 50, 50, 50, 120, 120, 120, 250, 250, 250])
    pal.putdata(index.ravel().tolist())
    pal.save(tmp_path / "greypal.png")
    img = read_raster(tmp_path / "greypal.png")
    assert img.channels == 0
    np.testing.assert_array_equal(img.array, np.array([0, 50, 120, 250], np.uint8)[index])


def test_greyscale_jpeg_saved_as_rgb_collapses_unless_keep_rgb(tmp_path: Path) -> None:
    yy, xx = np.mgrid[:32, :40]
    grey = (3 * xx + 2 * yy).astype(np.uint8)
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(tmp_path / "x.jpg", quality=95)
    assert Image.open(tmp_path / "x.jpg").mode == "RGB"
    img = read_raster(tmp_path / "x.jpg")
    assert (img.channels, img.size, img.dtype) == (0, (40, 32), np.uint8)
    assert np.abs(img.array.astype(int) - grey).max() <= 8  # lossy, but the same picture
    kept = read_raster(tmp_path / "x.jpg", keep_rgb=True)
    assert kept.channels == 3
    np.testing.assert_array_equal(kept.array[..., 0], img.array)
    assert read_image(tmp_path / "x.jpg").channels == 0


def test_colour_jpeg_keeps_three_channels(tmp_path: Path) -> None:
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[..., 0] = 200
    arr[..., 2] = 40
    Image.fromarray(arr).save(tmp_path / "c.jpeg")
    img = read_raster(tmp_path / "c.jpeg")
    assert img.channels == 3
    assert img.metadata["format"] == "jpeg"
    assert abs(int(img.array[8, 8, 0]) - 200) <= 4
    assert int(img.array[8, 8, 1]) <= 6


def test_bmp_greyscale_and_rgb(tmp_path: Path) -> None:
    arr = _grey8()
    Image.fromarray(arr).save(tmp_path / "g.bmp")
    img = read_raster(tmp_path / "g.bmp")
    assert img.channels == 0
    np.testing.assert_array_equal(img.array, arr)
    rgb = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "c.bmp").array, rgb)


def test_tiff_float32_written_by_pillow(tmp_path: Path) -> None:
    arr = RNG.normal(size=(12, 9)).astype(np.float32) * 1000
    Image.fromarray(arr, mode="F").save(tmp_path / "f.tif")
    img = read_raster(tmp_path / "f.tif")
    assert img.dtype == np.float32
    np.testing.assert_array_equal(img.array, arr)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 20), np.uint8)
    arr[0, :5] = 255  # bright patch top-left in stored pixels
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 degrees for display
    Image.fromarray(arr).save(tmp_path / "o.jpg", exif=exif, quality=100)
    img = read_raster(tmp_path / "o.jpg")
    assert img.size == (20, 10)
    assert img.array[-1, -3] > 200  # now bottom-right
    assert img.array[0, 2] < 50


# ------------------------------------------------------------------------- pixel size
def test_dpi_of_a_plain_pillow_png_is_a_print_setting_not_a_pixel_size(tmp_path: Path) -> None:
    Image.fromarray(_grey8()).save(tmp_path / "d.png", dpi=(254, 127))
    img = read_raster(tmp_path / "d.png")
    assert img.spacing == (1.0, 1.0) and not img.spacing_known  # as ITK: pHYs is ignored
    assert img.origin == (0.0, 0.0)


def test_png_scale_chunk_written_by_simpleitk_gives_spacing(tmp_path: Path) -> None:
    itk = sitk.GetImageFromArray(_grey8())
    itk.SetSpacing((0.175, 0.25))
    sitk.WriteImage(itk, str(tmp_path / "itk.png"))
    img = read_raster(tmp_path / "itk.png")
    assert img.spacing == pytest.approx((0.175, 0.25), abs=1e-12) and img.spacing_known


def test_dpi_of_a_plain_pillow_tiff_gives_spacing(tmp_path: Path) -> None:
    Image.fromarray(_grey8()).save(tmp_path / "d.tiff", dpi=(300, 300))
    img = read_raster(tmp_path / "d.tiff")
    assert img.spacing == pytest.approx((25.4 / 300,) * 2, rel=1e-6) and img.spacing_known


@pytest.mark.parametrize("ext", ["jpg", "tiff"])
def test_screen_default_resolutions_keep_the_grid_but_no_millimetres(
    tmp_path: Path, ext: str
) -> None:
    for dpi in (72, 96):
        Image.fromarray(_grey8()).save(tmp_path / f"d{dpi}.{ext}", dpi=(dpi, dpi))
        img = read_raster(tmp_path / f"d{dpi}.{ext}")
        assert img.spacing == pytest.approx((25.4 / dpi,) * 2, rel=1e-6)
        assert not img.spacing_known


def test_dpi_of_one_or_less_is_ignored(tmp_path: Path) -> None:
    Image.fromarray(_grey8()).save(tmp_path / "d.tiff", dpi=(1, 1))
    img = read_raster(tmp_path / "d.tiff")
    assert img.spacing == (1.0, 1.0) and not img.spacing_known


def _pillow_file(folder: Path, name: str) -> Path:
    """Files as other tools write them: resolution in each format's own way, or none."""
    path = folder / name
    stem, ext = name.split(".")
    kwargs: dict[str, object] = {}
    if stem == "dpi":
        kwargs = {"dpi": (254, 127)}
    elif stem == "cm":
        kwargs = (
            {"dpi": (100, 100)} if ext == "jpg" else {"resolution": 100.0, "resolution_unit": 3}
        )
    elif stem == "aspect":
        kwargs = {"resolution": 100.0, "resolution_unit": 1}
    elif stem == "exif":  # resolution in EXIF only, JFIF just an aspect ratio
        exif = Image.Exif()
        exif.update({282: 300.0, 283: 300.0, 296: 2})
        kwargs = {"exif": exif.tobytes()}
    Image.fromarray(_grey8()).save(path, **kwargs)
    if name == "cm.jpg":  # JFIF in dots per cm (Pillow writes dots per inch)
        data = bytearray(path.read_bytes())
        at = data.find(b"JFIF\x00")
        data[at + 7] = 2
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "name",
    [
        *("dpi.png", "plain.png"),
        *("dpi.jpg", "plain.jpg", "cm.jpg", "exif.jpg"),
        *("dpi.tif", "cm.tif", "aspect.tif"),
        "dpi.bmp",
    ],
)
def test_pixel_size_is_read_as_simpleitk_reads_it(tmp_path: Path, name: str) -> None:
    """So that masks line up with these images in 3D Slicer and ITK-SNAP (both read via ITK)."""
    path = _pillow_file(tmp_path, name)
    ours, theirs = read_raster(path), sitk.ReadImage(str(path))
    assert ours.spacing == pytest.approx(theirs.GetSpacing(), rel=1e-6)
    assert ours.origin == pytest.approx(theirs.GetOrigin())


@pytest.mark.parametrize("ext", ["png", "tiff"])
def test_simpleitk_reads_the_spacing_medlabel_writes(tmp_path: Path, ext: str) -> None:
    arr = _grey8()
    img = MedicalImage(arr, spacing=(0.143, 0.2))
    write_raster(img, tmp_path / f"x.{ext}")
    theirs = sitk.ReadImage(str(tmp_path / f"x.{ext}"))
    assert theirs.GetSpacing() == pytest.approx((0.143, 0.2), rel=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(theirs), arr)
    # without a pixel size nothing is claimed: ITK sees 1 mm, as it would for the source
    unknown = img.with_array(img.array, metadata={SPACING_UNKNOWN: True})
    write_raster(unknown, tmp_path / f"u.{ext}")
    assert sitk.ReadImage(str(tmp_path / f"u.{ext}")).GetSpacing() == (1.0, 1.0)


def test_a_file_without_a_pixel_size_is_marked_and_stays_so(tmp_path: Path) -> None:
    Image.fromarray(_grey8()).save(tmp_path / "plain.png")
    img = read_raster(tmp_path / "plain.png")
    assert img.spacing == (1.0, 1.0) and not img.spacing_known
    Image.fromarray(_grey8()).save(tmp_path / "dpi.tif", dpi=(254, 254))
    assert read_raster(tmp_path / "dpi.tif").spacing_known
    # medlabel's own copy keeps "unknown" and claims no resolution a plain tool would trust
    write_image(img, tmp_path / "copy.png")
    assert not read_image(tmp_path / "copy.png").spacing_known
    assert "dpi" not in Image.open(tmp_path / "copy.png").info
    write_image(img.with_array(img.array.astype(np.float32)), tmp_path / "copy.tiff")
    assert not read_image(tmp_path / "copy.tiff").spacing_known


# ------------------------------------------------------------------- medlabel round trips
def test_png_geometry_round_trip_through_embedded_chunk(tmp_path: Path) -> None:
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    img = MedicalImage(
        _grey8(),
        spacing=(0.143, 0.139),
        origin=(-120.5, 33.25),
        direction=(c, -s, s, c),
        modality="DX",
    )
    write_image(img, tmp_path / "x.png")
    back = read_image(tmp_path / "x.png")
    assert back.spacing == img.spacing  # exact: JSON, not the rounded pHYs chunk
    assert back.spacing_known
    assert back.origin == img.origin
    assert back.direction == img.direction
    assert back.modality == "DX"
    assert back.is_label is False
    np.testing.assert_array_equal(back.array, img.array)
    # plain tools see the DPI too
    dpi = Image.open(tmp_path / "x.png").info["dpi"]
    assert dpi == pytest.approx((25.4 / 0.143, 25.4 / 0.139), rel=1e-3)
    assert _files(tmp_path) == ["x.png"]


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
def test_uint16_round_trip(tmp_path: Path, ext: str) -> None:
    arr = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    img = MedicalImage(arr, spacing=(0.2, 0.25), origin=(3.0, 4.0), modality="CR")
    write_raster(img, tmp_path / f"x{ext}")
    back = read_raster(tmp_path / f"x{ext}")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back.array, arr)
    assert (back.spacing, back.origin, back.modality) == ((0.2, 0.25), (3.0, 4.0), "CR")


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_rgb_round_trip(tmp_path: Path, ext: str) -> None:
    arr = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    img = MedicalImage(arr, spacing=(0.5, 0.5), origin=(-1.0, 2.0), modality="XC")
    write_image(img, tmp_path / f"rgb{ext}")
    back = read_image(tmp_path / f"rgb{ext}")
    assert back.channels == 3
    np.testing.assert_array_equal(back.array, arr)
    assert back.origin == (-1.0, 2.0)


def test_tiff_float32_round_trip_with_geometry(tmp_path: Path) -> None:
    arr = RNG.normal(size=(12, 9)).astype(np.float32) * 1000 - 500
    img = MedicalImage(arr, spacing=(0.3, 0.7), origin=(5.0, -6.0), direction=(0, 1, 1, 0))
    write_image(img, tmp_path / "f.tiff")
    back = read_image(tmp_path / "f.tiff")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.array, arr)
    assert (back.spacing, back.origin, back.direction) == (img.spacing, img.origin, img.direction)


def test_label_png_round_trip_keeps_label_flag(tmp_path: Path) -> None:
    arr = np.zeros((10, 12), np.uint8)
    arr[2:5, 3:9] = 1
    arr[6, 6] = 7
    mask = MedicalImage(arr, spacing=(0.5, 0.5), is_label=True)
    write_image(mask, tmp_path / "mask.png")
    back = read_label(tmp_path / "mask.png", reference=mask)
    assert back.is_label
    np.testing.assert_array_equal(back.array, arr)


def test_integer_types_in_range_are_narrowed(tmp_path: Path) -> None:
    small = MedicalImage(np.array([[0, 17, 255]], np.int64), spacing=(1, 1))
    write_raster(small, tmp_path / "s.png")
    assert read_raster(tmp_path / "s.png").dtype == np.uint8
    assert read_raster(tmp_path / "s.png").array.tolist() == [[0, 17, 255]]
    wide = MedicalImage(np.array([[0, 256, 65535]], np.int32), spacing=(1, 1))
    write_raster(wide, tmp_path / "w.png")
    assert read_raster(tmp_path / "w.png").dtype == np.uint16
    assert read_raster(tmp_path / "w.png").array.tolist() == [[0, 256, 65535]]
    boolean = MedicalImage(np.array([[True, False]]), spacing=(1, 1))
    write_raster(boolean, tmp_path / "b.png")
    assert read_raster(tmp_path / "b.png").array.tolist() == [[1, 0]]


def test_float_in_unit_range_becomes_uint8_png(tmp_path: Path) -> None:
    arr = np.array([[0.0, 0.5, 1.0], [0.25, 0.001, 0.999]], np.float32)
    write_image(MedicalImage(arr, spacing=(1, 1)), tmp_path / "w.png")
    back = read_image(tmp_path / "w.png")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back.array, np.round(arr * 255).astype(np.uint8))
    assert back.array.tolist() == [[0, 128, 255], [64, 0, 255]]


# ------------------------------------------------------------------------- write errors
def test_3d_image_cannot_be_written_as_png(tmp_path: Path) -> None:
    vol = MedicalImage(np.zeros((3, 4, 5), np.uint8), spacing=(1, 1, 1))
    with pytest.raises(WriteError, match="2D images") as info:
        write_image(vol, tmp_path / "vol.png")
    assert "NIfTI" in str(info.value)
    assert info.value.path == tmp_path / "vol.png"
    assert _files(tmp_path) == []


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_negative_int16_cannot_be_written_and_message_mentions_windowing(
    tmp_path: Path, ext: str
) -> None:
    ct = MedicalImage(np.array([[-1000, 0, 400]], np.int16), spacing=(1, 1), modality="CT")
    with pytest.raises(WriteError, match="window") as info:
        write_image(ct, tmp_path / f"ct{ext}")
    assert "-1000..400" in str(info.value)
    assert f"ct{ext}" in str(info.value)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "arr",
    [
        np.array([[0.0, 1.5]], np.float32),  # float outside [0, 1]
        np.array([[0, 70000]], np.int32),  # beyond 16 bits
        np.array([[0, 300]], np.uint16)[..., None].repeat(3, axis=-1),  # 16-bit RGB
    ],
)
def test_values_png_cannot_hold_are_refused(tmp_path: Path, arr: np.ndarray) -> None:
    with pytest.raises(WriteError, match="window or rescale"):
        write_image(MedicalImage(arr, spacing=(1, 1)), tmp_path / "x.png")
    assert _files(tmp_path) == []


def test_two_channel_image_is_refused(tmp_path: Path) -> None:
    img = MedicalImage(np.zeros((4, 5, 2), np.uint8), spacing=(1, 1))
    with pytest.raises(WriteError, match="2 channels"):
        write_raster(img, tmp_path / "x.png")


def test_jpeg_is_not_a_write_format(tmp_path: Path) -> None:
    img = MedicalImage(_grey8(), spacing=(1, 1))
    with pytest.raises(WriteError, match="PNG and TIFF"):
        write_raster(img, tmp_path / "x.jpg")
    with pytest.raises(WriteError, match=r"cannot write \.jpg"):
        write_image(img, tmp_path / "x.jpg")
    assert _files(tmp_path) == []


def test_failed_write_keeps_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    write_raster(MedicalImage(_grey8(), spacing=(1, 1)), target)
    before = target.read_bytes()
    with pytest.raises(WriteError):
        write_raster(MedicalImage(np.array([[-1, 2]], np.int16), spacing=(1, 1)), target)
    assert target.read_bytes() == before
    assert _files(tmp_path) == ["x.png"]


# -------------------------------------------------------------------------- read errors
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_truncated_file_is_a_read_error(tmp_path: Path, ext: str) -> None:
    write_raster(
        MedicalImage(RNG.integers(0, 65536, (64, 64), dtype=np.uint16)), tmp_path / f"g{ext}"
    )
    data = (tmp_path / f"g{ext}").read_bytes()
    bad = tmp_path / f"cut{ext}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadError, match=f"cut\\{ext}: not a readable image") as info:
        read_image(bad)
    assert info.value.path == bad


def test_garbage_bytes_with_png_extension_is_a_read_error(tmp_path: Path) -> None:
    bad = tmp_path / "junk.png"
    bad.write_bytes(b"definitely not a PNG" * 50)
    with pytest.raises(ReadError, match=r"junk\.png: not a readable image"):
        read_raster(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ReadError, match=r"empty\.png"):
        read_image(empty)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match="no such file"):
        read_raster(tmp_path / "nope.png")
