"""Reading DICOM headers (never pixels) and finding DICOM files in a folder tree.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> info = read_header(get_testdata_file("CT_small.dcm"))
    >>> info.modality, info.rows, info.columns
    ('CT', 128, 128)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from tqdm import tqdm

from medlabel.errors import ReadError, UnsupportedFormatError
from medlabel.io.formats import has_dicom_preamble, is_dicom_file

__all__ = ["DicomFileInfo", "iter_dicom_files", "positive_pair", "read_header", "to_floats"]

log = logging.getLogger(__name__)

# SOP classes that carry no image to read as a volume.
_NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11",  # presentation states
    "1.2.840.10008.5.1.4.1.1.481",  # RT objects other than RT Image are handled below
    "1.2.840.10008.5.1.4.1.1.104",  # encapsulated documents (PDF, CDA)
)
_RT_IMAGE = "1.2.840.10008.5.1.4.1.1.481.1"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def to_floats(value: Any) -> tuple[float, ...] | None:
    """Multi-valued DICOM number to a float tuple; ``None`` when absent or unparsable."""
    if value is None or value == "":
        return None
    try:
        items = (
            list(value)
            if isinstance(value, list | tuple | pydicom.multival.MultiValue)
            else [value]
        )
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None


def positive_pair(values: Any) -> tuple[float, ...] | None:
    """The first two values of a spacing (a float tuple or a DICOM value) when both are finite
    and positive, else ``None`` (absent, unparsable, or ``0\\0`` as some radiographs hold).

    Example:
        >>> positive_pair([0.7, 0.7]), positive_pair(["0", "0"]), positive_pair(None)
        ((0.7, 0.7), None, None)
    """
    floats = values if isinstance(values, tuple) else to_floats(values)
    if floats and len(floats) >= 2 and all(math.isfinite(v) and v > 0 for v in floats[:2]):
        return floats[:2]
    return None


@dataclass(frozen=True)
class DicomFileInfo:
    """The header facts needed to group and stack DICOM files.

    ``iop`` is ImageOrientationPatient (row then column direction cosines), ``ipp`` the
    ImagePositionPatient of the first voxel, both ``None`` for projection images.
    """

    path: Path
    sop_class_uid: str
    series_uid: str
    study_uid: str
    modality: str | None
    rows: int
    columns: int
    frames: int
    iop: tuple[float, ...] | None
    ipp: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    instance_number: int | None
    echo_number: str
    series_description: str
    has_pixels: bool
    enhanced: bool
    compressed: bool = False

    @property
    def is_image(self) -> bool:
        """Whether the file carries pixel data that belongs in a volume."""
        if not self.has_pixels:
            return False
        if self.sop_class_uid == _RT_IMAGE:
            return True
        return not self.sop_class_uid.startswith(_NON_IMAGE_SOP_PREFIXES)

    def geometry_key(self) -> tuple[Any, ...]:
        """Key of the facts that slices of one volume share (size and orientation)."""
        iop = None if self.iop is None else tuple(np.round(self.iop, 3).tolist())
        return (self.rows, self.columns, iop, self.echo_number)


def read_header(path: str | os.PathLike[str], dataset: Dataset | None = None) -> DicomFileInfo:
    """Read the header of one DICOM file (pixels are not loaded).

    Raises:
        ReadError: the file is not DICOM or cannot be parsed.
    """
    p = Path(path)
    if dataset is None:
        try:
            dataset = pydicom.dcmread(p, stop_before_pixels=True, force=not has_dicom_preamble(p))
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            raise ReadError(p, f"not a readable DICOM file ({exc})") from exc
    ds = dataset
    # A header-only read stops before Pixel Data; an image module (Rows) stands in for it, and
    # a file that claims one without pixels fails later with a clear decoding error.
    has_pixels = "Rows" in ds or any(k in ds for k in _PIXEL_KEYWORDS)
    if "SOPClassUID" not in ds and "Rows" not in ds:
        raise ReadError(p, "not a DICOM image (no SOP Class UID and no Rows)")
    enhanced = "PerFrameFunctionalGroupsSequence" in ds
    iop = to_floats(ds.get("ImageOrientationPatient"))
    ipp = to_floats(ds.get("ImagePositionPatient"))
    spacing = to_floats(ds.get("PixelSpacing"))
    if enhanced:
        iop = iop or _functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = spacing or _functional(ds, "PixelMeasuresSequence", "PixelSpacing")
    try:
        instance = (
            int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
        )
    except (TypeError, ValueError):
        instance = None
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    return DicomFileInfo(
        path=p,
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        modality=(str(ds.Modality) if ds.get("Modality") else None),
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        frames=max(frames, 1),
        iop=iop if iop is not None and len(iop) == 6 else None,
        ipp=ipp if ipp is not None and len(ipp) == 3 else None,
        pixel_spacing=spacing,
        instance_number=instance,
        echo_number=str(ds.get("EchoNumbers", "") or ""),
        series_description=str(ds.get("SeriesDescription", "") or ""),
        has_pixels=has_pixels,
        enhanced=enhanced,
        compressed=_compressed(ds),
    )


def _compressed(ds: Dataset) -> bool:
    syntax = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    return bool(syntax is not None and syntax.is_compressed)


def _functional(ds: Dataset, sequence: str, keyword: str) -> tuple[float, ...] | None:
    """A value from the shared functional groups, or from the first frame's groups."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(groups)
        if not seq:
            continue
        item = seq[0].get(sequence)
        if item and keyword in item[0]:
            return to_floats(item[0].get(keyword))
    return None


def iter_dicom_files(
    folder: str | os.PathLike[str], *, recursive: bool = True
) -> Iterator[DicomFileInfo | ReadError]:
    """Yield the header of every DICOM file below ``folder`` (or the error it raised).

    Files that are not DICOM at all (no preamble, no ``.dcm`` extension) are passed over
    silently, so notes, thumbnails and ``DICOMDIR`` files beside a series do no harm.
    """
    root = Path(folder)
    paths = sorted(root.rglob("*") if recursive else root.iterdir())
    # Large archives take a while: show progress on a terminal (tqdm stays quiet otherwise).
    for p in tqdm(
        paths,
        desc="scanning DICOM headers",
        unit="file",
        leave=False,
        disable=None if len(paths) > 200 else True,
    ):
        if not p.is_file() or p.name.upper() == "DICOMDIR" or p.name.startswith("."):
            continue
        if not is_dicom_file(p):
            continue
        try:
            yield read_header(p)
        except ReadError as err:
            yield err
        except UnsupportedFormatError as err:
            yield ReadError(err.path, err.reason)
