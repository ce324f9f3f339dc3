"""Pictures a person can check at a glance: slice montages with coloured mask overlays.

Volumes are shown in the radiological convention: axial slices with the patient's right on
the left of the picture and anterior at the top, inferior slices first. Pixels are drawn at
their physical aspect ratio.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> vol = MedicalImage(np.random.default_rng(0).normal(size=(8, 32, 32)), spacing=(1, 1, 2))
    >>> mask = vol.with_array((vol.array > 1).astype(np.uint8), is_label=True)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "preview.png"
    >>> render_preview(vol, out, mask=mask, slices=4).size[0] > 0
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from medlabel.errors import MedlabelError, WriteError
from medlabel.image import MedicalImage
from medlabel.io import align_mask
from medlabel.io.atomic import atomic_output
from medlabel.preprocess.orient import reorient
from medlabel.preprocess.window import WINDOW_PRESETS

__all__ = [
    "LABEL_COLOURS",
    "MAX_PICTURE_PIXELS",
    "MAX_TILE",
    "MIN_TILE",
    "PICTURE_FORMATS",
    "picture_format",
    "render_preview",
    "render_thumbnail",
    "to_display",
]

#: Extensions a preview or thumbnail can be written with, and the format each one gets.
PICTURE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

#: Smallest tile side the command line accepts (smaller tiles show nothing), and the largest
#: any montage may ask for, in pixels.
MIN_TILE = 16
MAX_TILE = 4096

#: Largest picture a montage may make (pixels, legend included): about 200 MB as RGB.
MAX_PICTURE_PIXELS = 64 * 1024 * 1024

#: Colours for labels 1, 2, 3, ... (cycled), chosen to stay apart on grey images.
LABEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
)


def to_display(array: np.ndarray, window: str | tuple[float, float] | None = None) -> np.ndarray:
    """Map values to 0..255 ``uint8``: a named CT window, ``(level, width)``, or percentiles."""
    data = array.astype(np.float32)
    if isinstance(window, str):
        level, width = WINDOW_PRESETS[window]
    elif window is not None:
        level, width = window
    else:
        finite = data[np.isfinite(data)]
        lo, hi = np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0)
        level, width = (lo + hi) / 2, max(hi - lo, 1e-6)
    out = (data - (level - width / 2)) / width
    return (np.clip(np.nan_to_num(out), 0, 1) * 255).astype(np.uint8)


def picture_format(path: str | os.PathLike[str]) -> str:
    """The picture format (Pillow's name) that ``path``'s extension asks for.

    Raises:
        WriteError: the extension is not one of :data:`PICTURE_FORMATS`.

    Example:
        >>> picture_format("overlay.png"), picture_format("overlay.JPG")
        ('PNG', 'JPEG')
    """
    suffix = Path(path).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise WriteError(
            path,
            f"cannot write a picture as {suffix or '(no extension)'}; "
            f"use {', '.join(PICTURE_FORMATS)}",
        )
    return PICTURE_FORMATS[suffix]


def _save_picture(picture: Image.Image, out: str | os.PathLike[str]) -> None:
    """Write ``picture`` atomically in the format its extension asks for."""
    fmt = picture_format(out)
    with atomic_output(out) as tmp:
        picture.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def _pick_slices(n: int, count: int, mask: np.ndarray | None) -> list[int]:
    candidates = np.arange(n)
    if mask is not None:
        has = np.flatnonzero(mask.reshape(n, -1).any(axis=1))
        if has.size:
            candidates = has
    if len(candidates) <= count:
        return candidates.tolist()
    picks = (
        np.linspace(0, len(candidates) - 1, count + 2)[1:-1]
        if mask is None
        else np.linspace(0, len(candidates) - 1, count)
    )
    return sorted({int(candidates[round(p)]) for p in picks})


def _tile(
    grey: np.ndarray,
    labels: np.ndarray | None,
    spacing_xy: tuple[float, float],
    tile: int,
    alpha: float,
) -> Image.Image:
    rgb = grey if grey.ndim == 3 else np.repeat(grey[..., None], 3, axis=-1)
    rgb = rgb.astype(np.float32)
    if labels is not None:
        for value in np.unique(labels):
            if value == 0:
                continue
            colour = np.array(LABEL_COLOURS[(int(value) - 1) % len(LABEL_COLOURS)], np.float32)
            region = labels == value
            rgb[region] = (1 - alpha) * rgb[region] + alpha * colour
            edge = region & ~ndimage.binary_erosion(region)
            rgb[edge] = colour
    img = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    h_mm, w_mm = grey.shape[0] * spacing_xy[1], grey.shape[1] * spacing_xy[0]
    scale = tile / max(h_mm, w_mm)
    size = (max(1, round(w_mm * scale)), max(1, round(h_mm * scale)))
    return img.resize(
        size, Image.Resampling.NEAREST if labels is not None else Image.Resampling.BILINEAR
    )


def _montage_shape(count: int) -> tuple[int, int]:
    """Columns and rows of a montage of ``count`` tiles (at most 4 columns)."""
    cols = min(count, 4)
    return cols, math.ceil(count / cols)


def _check_picture_size(out: str | os.PathLike[str] | None, count: int, tile: int) -> None:
    """Refuse a montage of ``count`` tiles of ``tile`` pixels larger than the limit."""
    cols, rows = _montage_shape(count)
    pixels = (cols * tile) * (rows * tile + 18)
    if pixels > MAX_PICTURE_PIXELS:
        raise MedlabelError(
            out,
            f"a montage of {count} tiles of {tile} px ({cols} x {rows}) would be "
            f"{cols * tile} x {rows * tile} pixels, over the limit of "
            f"{MAX_PICTURE_PIXELS // 2**20} megapixels: ask for fewer slices or smaller tiles",
        )


def render_preview(
    image: MedicalImage,
    out: str | os.PathLike[str] | None = None,
    *,
    mask: MedicalImage | None = None,
    window: str | tuple[float, float] | None = None,
    slices: int = 12,
    tile: int = 256,
    alpha: float = 0.35,
) -> Image.Image:
    """Render a montage of slices (or the 2D image) with an optional label overlay.

    Args:
        image: the image; volumes are reoriented to LPS for display.
        out: picture to write (atomically), in the format of its extension (``.png``,
            ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp``); ``None`` only returns the picture.
        mask: label map on the same grid as ``image`` (checked; the same voxel centres
            stored in another axis order or direction are reordered onto it).
        window: CT window preset name, ``(level, width)``, or ``None`` for 0.5-99.5 percentiles.
        slices: how many slices of a volume to show (slices holding the mask when given);
            at least 1.
        tile: size of each tile's longer side in pixels, 1 .. :data:`MAX_TILE` (a 2D image
            is drawn at least 512 pixels wide).
        alpha: opacity of the label colours.

    Raises:
        GeometryMismatchError: the mask is not on the image grid. A mask holding the same
            voxel centres stored with axes permuted or flipped (LAS for an LPS series) is
            not refused: its voxels are reordered onto the image grid (no interpolation).
        WriteError: ``out`` has no picture extension (checked before drawing).
        MedlabelError: ``slices`` below 1, ``tile`` outside 1 .. :data:`MAX_TILE`, or a
            montage larger than :data:`MAX_PICTURE_PIXELS` (checked before drawing; the path
            named is ``out``).
    """
    if out is not None:
        picture_format(out)
    if isinstance(slices, bool) or int(slices) != slices or slices < 1:
        raise MedlabelError(out, f"slices must be a whole number >= 1, got {slices}")
    if isinstance(tile, bool) or int(tile) != tile or not 1 <= tile <= MAX_TILE:
        raise MedlabelError(
            out, f"tile must be a whole number of pixels from 1 to {MAX_TILE}, got {tile}"
        )
    if mask is not None:  # the same lattice stored flipped is reordered exactly
        mask = align_mask(image, mask, (mask.metadata.get("source_files") or [None])[0])
    if image.ndim == 3:
        image = reorient(image, "LPS")
        mask = reorient(mask, "LPS") if mask is not None else None
    labels = None if mask is None else mask.array.astype(np.int32)
    chosen = [] if image.ndim == 2 else _pick_slices(image.array.shape[0], slices, labels)
    _check_picture_size(out, len(chosen) or 1, max(tile, 512) if image.ndim == 2 else tile)
    grey = to_display(image.array, window)
    sx, sy = image.spacing[0], image.spacing[1]
    if image.ndim == 2:
        tiles = [_tile(grey, labels, (sx, sy), max(tile, 512), alpha)]
        names: Sequence[str] = [""]
    else:
        tiles = [
            _tile(grey[k], None if labels is None else labels[k], (sx, sy), tile, alpha)
            for k in chosen
        ]
        names = [f"z {k + 1}/{grey.shape[0]}" for k in chosen]
    cols, rows = _montage_shape(len(tiles))
    tw = max(t.size[0] for t in tiles)
    th = max(t.size[1] for t in tiles)
    legend_h = 18 if labels is not None and labels.any() else 0
    sheet = Image.new("RGB", (cols * tw, rows * th + legend_h), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for i, (t, name) in enumerate(zip(tiles, names, strict=True)):
        x, y = (i % cols) * tw, (i // cols) * th
        sheet.paste(t, (x + (tw - t.size[0]) // 2, y + (th - t.size[1]) // 2))
        if name:
            draw.text((x + 4, y + 2), name, fill=(255, 255, 0))
    if legend_h and labels is not None:
        x = 4
        classes = dict(mask.metadata.get("labels", {})) if mask is not None else {}
        for value in [int(v) for v in np.unique(labels) if v != 0][:16]:
            colour = LABEL_COLOURS[(value - 1) % len(LABEL_COLOURS)]
            text = f"{value} {classes[value]}" if value in classes else str(value)
            draw.rectangle((x, rows * th + 4, x + 10, rows * th + 14), fill=colour)
            draw.text((x + 13, rows * th + 3), text, fill=(255, 255, 255))
            x += 20 + 7 * len(text)
    if out is not None:
        _save_picture(sheet, out)
    return sheet


def render_thumbnail(
    image: MedicalImage,
    out: str | os.PathLike[str],
    *,
    size: int = 128,
    window: str | tuple[float, float] | None = None,
) -> None:
    """A small grey picture (the middle axial slice of a volume, in LPS), written atomically
    in the format of ``out``'s extension (as :func:`render_preview`).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.png"
        >>> render_thumbnail(MedicalImage(np.random.rand(300, 200)), path, size=64)
        >>> Image.open(path).size
        (43, 64)
    """
    if image.ndim == 3 and image.array.shape[0] > 1:
        image = reorient(image, "LPS")
    arr = np.asarray(image.array)
    if image.channels:
        arr = arr.mean(axis=-1)
    if arr.ndim == 3:
        arr = arr[arr.shape[0] // 2]
    pic = Image.fromarray(to_display(arr, window))
    sx, sy = image.spacing[0], image.spacing[1]
    h, w = arr.shape
    scale = size / max(h * sy, w * sx)
    pic = pic.resize(
        (max(1, round(w * sx * scale)), max(1, round(h * sy * scale))), Image.Resampling.BILINEAR
    )
    _save_picture(pic, out)
