"""File format detection by extension and content.

Example:
    >>> full_suffix("ct.nii.gz"), detect_format("ct.nii.gz")
    ('.nii.gz', 'nifti')
    >>> detect_format("chest.jpeg")
    'raster'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "Format",
    "detect_format",
    "full_suffix",
    "has_dicom_preamble",
    "is_dicom_file",
]

Format = Literal["dicom", "nifti", "nrrd", "metaimage", "raster", "medmnist"]

_EXT: dict[str, Format] = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".png": "raster",
    ".jpg": "raster",
    ".jpeg": "raster",
    ".tif": "raster",
    ".tiff": "raster",
    ".bmp": "raster",
    ".npz": "medmnist",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".ima": "dicom",
}

#: Extensions that can be read (DICOM files without extension are found by content).
READ_FORMATS: tuple[str, ...] = tuple(_EXT)
#: Extensions that :func:`medlabel.io.write_image` can write.
WRITE_FORMATS: tuple[str, ...] = (
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".mha",
    ".mhd",
    ".png",
    ".tif",
    ".tiff",
)

_DOUBLE = (".nii.gz",)


def full_suffix(path: str | os.PathLike[str]) -> str:
    """Lower-case extension, including double ones such as ``.nii.gz``."""
    name = Path(path).name.lower()
    for ext in _DOUBLE:
        if name.endswith(ext):
            return ext
    return Path(name).suffix


def has_dicom_preamble(path: str | os.PathLike[str]) -> bool:
    """True when the file carries the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with Path(path).open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True for files with the DICOM preamble, or a DICOM extension and some content.

    Files with a ``.dcm`` extension but no preamble (old ACR-NEMA style) are accepted.
    """
    p = Path(path)
    if has_dicom_preamble(p):
        return True
    try:
        return full_suffix(p) in (".dcm", ".dicom", ".ima") and p.stat().st_size > 0
    except OSError:
        return False


def detect_format(path: str | os.PathLike[str]) -> Format | None:
    """Format of a file, by extension first and by content for extension-less DICOM files.

    Returns ``None`` when the type is unknown (the caller raises a clear error).
    """
    p = Path(path)
    ext = full_suffix(p)
    if ext in _EXT:
        return _EXT[ext]
    if p.name.upper() == "DICOMDIR" or is_dicom_file(p):
        return "dicom"
    return None
