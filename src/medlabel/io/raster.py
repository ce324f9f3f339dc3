"""PNG, JPEG, TIFF and BMP images (X-ray exports) through Pillow.

Reading: 8- and 16-bit greyscale, RGB(A) and palette images; RGB images whose three channels
are identical (most greyscale JPEG exports) come back as one channel, which loses nothing.
EXIF orientation is applied. The pixel size is read where SimpleITK (and so 3D Slicer and
ITK-SNAP) reads it, so masks line up with their images there:

* PNG: the ``sCAL`` chunk (the physical scale of the subject, which ITK writes and reads as
  millimetres); the ``pHYs`` print resolution is ignored, as ITK ignores it;
* TIFF and JPEG: the resolution (DPI, or dots per cm; for JPEG the JFIF density, not EXIF's);
  72 and 96 dpi are the defaults of screens and image editors rather than a measured pixel
  size, so the grid keeps them (as ITK does) but sizes are reported in pixels;
* BMP: none (ITK ignores its resolution too).

Without a pixel size, 1 is assumed and the image is marked as having no known pixel size
(:attr:`~medlabel.image.MedicalImage.spacing_known` is ``False``).

Writing: PNG for 8/16-bit unsigned greyscale and 8-bit RGB; TIFF also for float32. Floats in
[0, 1] (e.g. windowed images) are quantised to 8 bits for PNG. medlabel stores the exact
geometry (spacing, origin, direction, modality) as JSON in a text chunk (PNG) or the image
description (TIFF), so its own files round-trip exactly.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.arange(12, dtype=np.uint8).reshape(3, 4), spacing=(0.2, 0.3))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.png"
    >>> write_raster(img, path)
    >>> read_raster(path).spacing
    (0.2, 0.3)
"""

from __future__ import annotations

import io
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from medlabel.errors import ReadError, WriteError
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io.atomic import atomic_output
from medlabel.io.formats import full_suffix

__all__ = ["read_raster", "write_raster"]

_GEOMETRY_KEY = "medlabel:geometry"
_TIFF_DESCRIPTION = 270


def _geometry_from(info: dict[Any, Any], tiff_description: str | None) -> dict[str, Any] | None:
    raw = info.get(_GEOMETRY_KEY)
    if raw is None and tiff_description and tiff_description.startswith("{"):
        try:
            raw = json.loads(tiff_description).get(_GEOMETRY_KEY)
        except json.JSONDecodeError:
            raw = None
        if raw is not None:
            raw = json.dumps(raw)
    if raw is None:
        return None
    try:
        geo = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        return None
    return geo if isinstance(geo, dict) else None


def _frame_array(frame: Image.Image) -> np.ndarray:
    mode = frame.mode
    if mode == "P":
        frame = frame.convert("RGBA" if "transparency" in frame.info else "RGB")
    elif mode == "LA":
        frame = frame.convert("L")
    elif mode in ("CMYK", "YCbCr", "HSV", "LAB"):
        frame = frame.convert("RGB")
    arr = np.asarray(frame)
    if frame.mode == "1":
        arr = arr.astype(np.uint8)
    elif frame.mode in ("I;16", "I;16B", "I;16L") or (
        frame.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535
    ):
        arr = arr.astype(np.uint16)
    if arr.ndim == 3 and arr.shape[-1] == 4 and np.all(arr[..., 3] == 255):
        arr = arr[..., :3]
    return arr


def read_raster(path: str | os.PathLike[str], *, keep_rgb: bool = False) -> MedicalImage:
    """Read a PNG, JPEG, TIFF or BMP file.

    Args:
        path: the file.
        keep_rgb: keep three channels even when they are identical.

    Raises:
        ReadError: the file is missing, truncated or not an image.
    """
    p = Path(path)
    if not p.is_file():
        raise ReadError(p, "no such file")
    try:
        with Image.open(p) as im:
            im.load()
            info, fmt = dict(im.info), im.format
            desc = None
            if hasattr(im, "tag_v2"):
                desc = im.tag_v2.get(_TIFF_DESCRIPTION)
            n_frames = getattr(im, "n_frames", 1)
            frames = []
            for i in range(n_frames):
                im.seek(i)
                frame = ImageOps.exif_transpose(im) if i == 0 and n_frames == 1 else im
                frames.append(_frame_array(frame))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ReadError(p, f"not a readable image ({exc})") from exc
    arr = frames[0] if len(frames) == 1 else np.stack(frames)
    if (
        arr.ndim == 2 + (len(frames) > 1) + 1
        and not keep_rgb
        and (
            arr.shape[-1] >= 3
            and np.array_equal(arr[..., 0], arr[..., 1])
            and np.array_equal(arr[..., 0], arr[..., 2])
        )
    ):
        arr = arr[..., 0]
    geo = _geometry_from(info, desc)
    dim = 3 if len(frames) > 1 else 2
    meta: dict[str, Any] = {"format": full_suffix(p).lstrip(".")}
    if geo and len(geo.get("spacing", ())) == dim:
        if geo.get("spacing_known") is False:
            meta[SPACING_UNKNOWN] = True
        return MedicalImage(
            arr,
            spacing=tuple(geo["spacing"]),
            origin=tuple(geo["origin"]),
            direction=tuple(geo["direction"]),
            modality=geo.get("modality"),
            metadata=meta,
            is_label=bool(geo.get("is_label", False)),
        )
    pixel, known = _pixel_size(p, fmt, info)
    if not known:
        meta[SPACING_UNKNOWN] = True
    return MedicalImage(arr, spacing=(*pixel, *(1.0,) * (dim - 2)), metadata=meta)


#: Resolutions that screens and image editors write by default: not a measured pixel size.
DISPLAY_DPI = (72.0, 96.0)


def _pixel_size(
    path: Path, fmt: str | None, info: dict[Any, Any]
) -> tuple[tuple[float, ...], bool]:
    """The (x, y) pixel size in mm as SimpleITK reads it, and whether it is a real one."""
    if fmt == "PNG":
        scale = _png_scale(path)
        if scale is not None:
            return scale, True
        return (1.0, 1.0), False
    dpi = info.get("dpi") if fmt == "TIFF" else None
    if fmt in ("JPEG", "MPO"):  # the JFIF density only (Pillow also looks in EXIF; ITK does not)
        per_inch = {1: 1.0, 2: 2.54}.get(info.get("jfif_unit", 0))
        density = info.get("jfif_density")
        dpi = tuple(float(d) * per_inch for d in density) if per_inch and density else None
    if dpi and len(dpi) == 2 and all(float(d) > 1 for d in dpi):
        display = all(any(abs(float(d) - v) < 0.01 for v in DISPLAY_DPI) for d in dpi)
        return (25.4 / float(dpi[0]), 25.4 / float(dpi[1])), not display
    return (1.0, 1.0), False


def _insert_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """``png`` with a chunk added right after its header (Pillow drops public chunks it does
    not know, such as ``sCAL``)."""
    end = 8 + 12 + int.from_bytes(png[8:12], "big")  # signature + IHDR
    chunk = len(data).to_bytes(4, "big") + kind + data
    return png[:end] + chunk + zlib.crc32(kind + data).to_bytes(4, "big") + png[end:]


def _png_scale(path: Path) -> tuple[float, float] | None:
    """The ``sCAL`` chunk's two scales (ITK writes and reads millimetres), ``None`` without one.

    Only the chunks before the image data are read (``sCAL`` must come before them).
    """
    with path.open("rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind in (b"IDAT", b"IEND"):
                return None
            data = f.read(length)
            f.seek(4, os.SEEK_CUR)  # CRC
            if kind != b"sCAL":
                continue
            try:
                x, y = (float(v) for v in data[1:].split(b"\x00")[:2])
            except ValueError:
                return None
            return (x, y) if x > 0 and y > 0 else None


def _to_writable(image: MedicalImage, path: Path, tiff: bool) -> np.ndarray:
    arr = image.array
    if image.ndim != 2:
        raise WriteError(
            path,
            f"{full_suffix(path)} holds 2D images; this one is {image.size} (use NIfTI, or "
            "`medlabel preview` for a picture of the slices)",
        )
    if image.channels not in (0, 3, 4):
        raise WriteError(path, f"{image.channels} channels cannot be stored in {full_suffix(path)}")
    if arr.dtype in (np.uint8, np.uint16) and (image.channels == 0 or arr.dtype == np.uint8):
        return arr
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if arr.dtype.kind in "iub":
        if lo >= 0 and hi <= 255:
            return arr.astype(np.uint8)
        if lo >= 0 and hi <= 65535 and image.channels == 0:
            return arr.astype(np.uint16)
    if arr.dtype.kind == "f":
        if tiff and image.channels == 0:
            return arr.astype(np.float32)
        if lo >= 0.0 and hi <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
    raise WriteError(
        path,
        f"{full_suffix(path)} stores unsigned 8/16-bit values; this image holds {lo:g}..{hi:g} "
        f"({arr.dtype}): window or rescale it first (medlabel preprocess --window ...) or write "
        "NIfTI/NRRD",
    )


def write_raster(image: MedicalImage, path: str | os.PathLike[str]) -> None:
    """Write a 2D image as PNG or TIFF (atomically), with its geometry embedded.

    Raises:
        WriteError: 3D images, unsupported channel counts, or values the format cannot hold.
    """
    p = Path(path)
    ext = full_suffix(p)
    tiff = ext in (".tif", ".tiff")
    if ext not in (".png", ".tif", ".tiff"):
        raise WriteError(p, f"medlabel writes PNG and TIFF, not {ext} (lossy or no 16-bit)")
    arr = _to_writable(image, p, tiff)
    geometry = {
        "spacing": list(image.spacing),
        "origin": list(image.origin),
        "direction": list(image.direction),
        "modality": image.modality,
        "is_label": image.is_label,
        "spacing_known": image.spacing_known,
    }
    # no resolution at all rather than a made-up one when the pixel size is not known; PNG
    # carries it in sCAL (what ITK, 3D Slicer and ITK-SNAP read), TIFF as its resolution
    res: dict[str, Any] = {}
    if image.spacing_known:
        res["dpi"] = tuple(25.4 / s for s in image.spacing)
    if arr.dtype == np.uint16:
        pil = Image.fromarray(arr, mode=None)
        if pil.mode not in ("I;16", "I"):
            pil = pil.convert("I;16")
    else:
        pil = Image.fromarray(arr)
    with atomic_output(p) as tmp:
        if tiff:
            description = json.dumps({_GEOMETRY_KEY: geometry})
            pil.save(tmp, format="TIFF", description=description, compression="tiff_deflate", **res)
        else:
            chunk = PngImagePlugin.PngInfo()
            chunk.add_text(_GEOMETRY_KEY, json.dumps(geometry))
            buffer = io.BytesIO()
            pil.save(buffer, format="PNG", pnginfo=chunk, **res)
            data = buffer.getvalue()
            if image.spacing_known:
                x, y = (repr(float(v)).encode() for v in image.spacing)
                data = _insert_chunk(data, b"sCAL", b"\x01" + x + b"\x00" + y)
            tmp.write_bytes(data)
