"""Decoding DICOM pixel data to physical values.

Stored values pass through the modality transform (RescaleSlope and RescaleIntercept, giving
Hounsfield units for CT). MONOCHROME1 images, where high values are dark, are inverted by
default so that bone is bright in every radiograph. Compressed transfer syntaxes (JPEG-2000,
JPEG lossless and baseline, JPEG-LS, RLE) are decoded through pydicom's plugins (pylibjpeg).

The output type follows SimpleITK's: the stored type when no rescale applies, the smallest
integer type holding the rescaled range of the stored bits when slope and intercept are
integers, else float64.

Example:
    >>> import numpy as np
    >>> rescaled_dtype((0, 4095), [1.0], [-1024.0], np.dtype(np.uint16))
    dtype('int16')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medlabel.errors import ReadError, UnsupportedFormatError

__all__ = [
    "decode_pixels",
    "frame_count",
    "modality_transform",
    "rescaled_dtype",
    "stored_range",
]

log = logging.getLogger(__name__)

_INT_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)


def stored_range(ds: Dataset) -> tuple[int, int]:
    """Smallest and largest value the stored bits can hold."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def rescaled_dtype(
    srange: tuple[int, int],
    slopes: Sequence[float],
    intercepts: Sequence[float],
    stored: np.dtype,
) -> np.dtype:
    """Output dtype for the modality transform over all slices (see module docstring)."""
    if all(s == 1 for s in slopes) and all(i == 0 for i in intercepts):
        return np.dtype(stored)
    if not all(float(v).is_integer() for v in (*slopes, *intercepts)):
        return np.dtype(np.float64)
    ends = [s * v + i for s, i in zip(slopes, intercepts, strict=True) for v in srange]
    lo, hi = min(ends), max(ends)
    for t in _INT_TYPES:
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return np.dtype(t)
    return np.dtype(np.float64)


def frame_count(ds: Dataset, path: str | Path) -> tuple[int, str | None]:
    """NumberOfFrames, and a warning when it had to be inferred (in memory, never in the file).

    A NumberOfFrames that is not a number (``'1A'``) is replaced by the number of frames the
    uncompressed pixel data holds, which pydicom then decodes; compressed pixel data gives no
    such count, and the file is refused naming the attribute.

    Example:
        >>> ds = Dataset()
        >>> ds.Rows, ds.Columns, ds.BitsAllocated, ds.NumberOfFrames = 2, 2, 8, "2"
        >>> frame_count(ds, "x.dcm")
        (2, None)

    Raises:
        ReadError: NumberOfFrames is not a number and cannot be inferred.
    """
    raw = ds.get("NumberOfFrames")
    try:
        return max(int(raw or 1), 1), None
    except (TypeError, ValueError):
        pass
    text = str(raw)
    bits = int(ds.get("BitsAllocated") or 16)
    frame_bytes = int(ds.Rows) * int(ds.Columns) * _stored_samples(ds) * bits // 8
    data = ds.get("PixelData")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if (syntax is not None and syntax.is_compressed) or not data or frame_bytes <= 0:
        raise ReadError(
            path,
            f"NumberOfFrames (0028,0008) is {text!r}, not a number, and the number of frames "
            "cannot be told from compressed pixel data",
        )
    frames = len(data) // frame_bytes
    if frames < 1 or len(data) - frames * frame_bytes > 1:  # one padding byte is allowed
        raise ReadError(
            path,
            f"NumberOfFrames (0028,0008) is {text!r}, not a number, and the {len(data)} bytes "
            f"of pixel data are not a whole number of {frame_bytes}-byte frames",
        )
    ds.NumberOfFrames = frames  # in memory only, so that pydicom decodes every frame
    return frames, (
        f"NumberOfFrames (0028,0008) is {text!r}, not a number: read the {frames} frame(s) "
        "the pixel data holds"
    )


def _stored_samples(ds: Dataset) -> int:
    """Samples stored per pixel in uncompressed pixel data: YBR_FULL_422 keeps one Cb and one
    Cr for every two pixels, so 2 where the header says 3."""
    samples = int(ds.get("SamplesPerPixel") or 1)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return 2 if samples == 3 and photometric == "YBR_FULL_422" else samples


def decode_pixels(ds: Dataset, path: str | Path) -> np.ndarray:
    """Stored pixel values as ``[frames, rows, cols(, samples)]`` (frames axis always present),
    in the machine's byte order (big-endian files included).

    Colour images come out as RGB (YBR, subsampled YBR_FULL_422 included, is converted;
    palette colour is looked up).

    Raises:
        UnsupportedFormatError: no decoder for the transfer syntax.
        ReadError: the pixel data is missing, truncated or corrupt.
    """
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ReadError(path, "DICOM file has no pixel data")
    frames, _ = frame_count(ds, path)
    rows, cols = int(ds.Rows), int(ds.Columns)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        expected = None
    else:
        bits = int(ds.get("BitsAllocated") or 16)
        samples = _stored_samples(ds)
        expected = int(frames * rows * cols * samples * bits + 7) // 8
        actual = len(ds.PixelData) if "PixelData" in ds else None
        if actual is not None and actual < expected:
            layout = "" if samples == int(ds.get("SamplesPerPixel") or 1) else " (YBR_FULL_422)"
            raise ReadError(
                path,
                f"pixel data is truncated: {actual} bytes where {rows}x{cols}x{frames} frames of "
                f"{bits}-bit samples{layout} need {expected}",
            )
    arr = _pixel_array(ds, path, syntax)
    if arr.dtype.byteorder not in ("=", "|"):  # big-endian files: native order for every writer
        arr = arr.astype(arr.dtype.newbyteorder("="))
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    if frames == 1:
        arr = arr[None]
    if arr.shape[1:3] != (rows, cols):
        raise ReadError(path, f"decoded pixels have shape {arr.shape}, expected {rows}x{cols}")
    return arr


#: JPEG sequential processes (baseline 8-bit, extended 12-bit) whose scans IJG libjpeg (and
#: so GDCM and SimpleITK) decode whatever their spectral-selection fields say.
_JPEG_SEQUENTIAL = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


def _pixel_array(ds: Dataset, path: str | Path, syntax: Any) -> np.ndarray:
    try:
        try:
            return np.asarray(ds.pixel_array)
        except (ValueError, RuntimeError) as exc:
            if str(syntax) not in _JPEG_SEQUENTIAL or not _fix_sequential_scans(ds):
                raise
            log.info("%s: JPEG scan header repaired in memory (%s)", Path(path).name, exc)
            return np.asarray(ds.pixel_array)
    except NotImplementedError as exc:
        name = getattr(syntax, "name", str(syntax))
        raise UnsupportedFormatError(
            path, f"no decoder for transfer syntax {name} ({exc})"
        ) from exc
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError, OSError) as exc:
        hint = ""
        if str(syntax) in _JPEG_SEQUENTIAL and int(ds.get("BitsStored") or 8) > 8:
            hint = (
                "; 12-bit JPEG Extended is decoded by the pylibjpeg-libjpeg plugin, and GDCM "
                "(the python-gdcm package, not installed with medlabel) decodes more damaged "
                "streams"
            )
        raise ReadError(path, f"pixel data cannot be decoded ({exc}){hint}") from exc


def _fix_sequential_scans(ds: Dataset) -> bool:
    """Set Ss=0, Se=63, Ah=Al=0 in the scan headers of sequential JPEG frames that say
    otherwise, in memory; whether anything changed.

    These fields only mean something to progressive JPEG; IJG libjpeg, which GDCM and so
    SimpleITK use, ignores them in sequential scans with a warning, while libjpeg (pylibjpeg)
    refuses the frame. Some 12-bit files (pydicom's ``JPEG-lossy.dcm``) write ``Se = 0``.
    """
    from pydicom.encaps import encapsulate, generate_frames

    frames = int(ds.get("NumberOfFrames") or 1)
    try:
        originals = list(generate_frames(ds.PixelData, number_of_frames=frames))
    except (ValueError, KeyError, TypeError):
        return False
    fixed = [_fix_sequential_scan(f) for f in originals]
    if all(a == b for a, b in zip(fixed, originals, strict=True)):
        return False
    ds.PixelData = encapsulate(fixed)
    ds["PixelData"].is_undefined_length = True
    return True


def _fix_sequential_scan(frame: bytes) -> bytes:
    """One JPEG codestream with its SOS spectral selection set to a whole sequential scan.

    Example:
        >>> sos = bytes.fromhex("ffd8ffc1000b0c0004000101011100ffda0008010100000000")
        >>> _fix_sequential_scan(sos)[-3:].hex()
        '003f00'
    """
    out = bytearray(frame)
    i, sequential = 2, False
    while i + 4 <= len(out) and out[i] == 0xFF:
        marker = out[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(out[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1):
            sequential = True
        elif marker in (0xC2, 0xC3) or (0xC5 <= marker <= 0xCF and marker not in (0xC8, 0xCC)):
            return frame  # progressive, lossless or hierarchical: the fields mean something
        if marker == 0xDA:
            if not sequential:
                return frame
            tail = i + 2 + length - 3  # Ss, Se, Ah/Al close the SOS segment
            if tail + 3 <= len(out):
                out[tail : tail + 3] = b"\x00\x3f\x00"
            return bytes(out)
        i += 2 + length
    return frame


def modality_transform(
    stored: np.ndarray,
    slope: float,
    intercept: float,
    dtype: np.dtype,
) -> np.ndarray:
    """Apply ``value = stored * slope + intercept`` and cast to ``dtype`` (exact for integers)."""
    if slope == 1 and intercept == 0:
        return stored.astype(dtype, copy=False)
    if np.issubdtype(dtype, np.integer):
        out = stored.astype(np.int64) * int(slope) + int(intercept)
        return out.astype(dtype)
    return (stored.astype(np.float64) * float(slope) + float(intercept)).astype(dtype)


def invert_monochrome1(stored: np.ndarray, srange: tuple[int, int]) -> np.ndarray:
    """Map MONOCHROME1 stored values so that high means bright (``lo + hi - value``)."""
    lo, hi = srange
    out = (lo + hi) - stored.astype(np.int64)
    return out.astype(stored.dtype)


def check_decodable(ds: Dataset, path: str | Path) -> None:
    """Raise a clear error for pixel layouts medlabel does not handle."""
    if int(ds.get("SamplesPerPixel") or 1) not in (1, 3):
        raise UnsupportedFormatError(path, f"{ds.SamplesPerPixel} samples per pixel")
    if "ModalityLUTSequence" in ds:
        raise UnsupportedFormatError(path, "Modality LUT Sequence (non-linear modality LUT)")
