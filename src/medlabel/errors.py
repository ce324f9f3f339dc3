"""Exception types of medlabel.

Every error that bad input can cause is a :class:`MedlabelError`. Its message names the file
and the reason in one line, so the command line can print it as is, and batch jobs can record
it in a manifest.

Example:
    >>> from medlabel.errors import ReadError
    >>> err = ReadError("scan.nii.gz", "file is truncated")
    >>> str(err)
    'scan.nii.gz: file is truncated'
"""

from __future__ import annotations

import os
from pathlib import Path


class MedlabelError(Exception):
    """Base class: a problem with the user's input or request, explained in one line.

    Args:
        path: the file or folder concerned (or ``None`` when no single path is to blame).
        reason: what is wrong, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(self.reason if path is None else f"{path}: {self.reason}")

    def __reduce__(self) -> tuple[type[MedlabelError], tuple[Path | None, str]]:
        """Pickle with both arguments, so errors survive worker processes."""
        return (self.__class__, (self.path, self.reason))


class ReadError(MedlabelError):
    """A file exists but cannot be decoded (corrupt, truncated, not an image)."""


class UnsupportedFormatError(MedlabelError):
    """The file type, transfer syntax or pixel layout is not supported."""


class SeriesError(MedlabelError):
    """A DICOM folder does not hold exactly one consistent series (empty, mixed, duplicates)."""


class SliceSpacingError(SeriesError):
    """Slices of a series are missing or unevenly spaced."""


class GantryTiltError(SeriesError):
    """Slices are sheared (gantry tilt) so they do not form a rectilinear volume."""


class GeometryMismatchError(MedlabelError):
    """Two images that must share a grid (image and mask) do not."""


class WriteError(MedlabelError):
    """An output cannot be written in the requested format."""


class PreprocessError(MedlabelError):
    """A preprocessing operation cannot be applied to this image."""


class StoreError(MedlabelError):
    """A request the annotation store cannot honour (unknown item, bad state, bad role...)."""
