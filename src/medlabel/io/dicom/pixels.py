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

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medlabel.errors import ReadError, UnsupportedFormatError

__all__ = ["decode_pixels", "modality_transform", "rescaled_dtype", "stored_range"]

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


def decode_pixels(ds: Dataset, path: str | Path) -> np.ndarray:
    """Stored pixel values as ``[frames, rows, cols(, samples)]`` (frames axis always present).

    Colour images come out as RGB (YBR is converted, palette colour is looked up).

    Raises:
        UnsupportedFormatError: no decoder for the transfer syntax.
        ReadError: the pixel data is missing, truncated or corrupt.
    """
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ReadError(path, "DICOM file has no pixel data")
    frames = int(ds.get("NumberOfFrames") or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        expected = None
    else:
        bits = int(ds.get("BitsAllocated") or 16)
        expected = (frames * rows * cols * samples * bits + 7) // 8
        actual = len(ds.PixelData) if "PixelData" in ds else None
        if actual is not None and actual < expected:
            raise ReadError(
                path,
                f"pixel data is truncated: {actual} bytes where {rows}x{cols}x{frames} frames of "
                f"{bits}-bit samples need {expected}",
            )
    try:
        arr = ds.pixel_array
    except NotImplementedError as exc:
        name = getattr(syntax, "name", str(syntax))
        raise UnsupportedFormatError(
            path, f"no decoder for transfer syntax {name} ({exc})"
        ) from exc
    except (ValueError, RuntimeError, TypeError, AttributeError, KeyError, OSError) as exc:
        raise ReadError(path, f"pixel data cannot be decoded ({exc})") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    if frames == 1:
        arr = arr[None]
    if arr.shape[1:3] != (rows, cols):
        raise ReadError(path, f"decoded pixels have shape {arr.shape}, expected {rows}x{cols}")
    return arr


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
