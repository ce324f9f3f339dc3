"""Finding the DICOM series in a folder tree (or a DICOMDIR) and choosing one.

Files are grouped by SeriesInstanceUID. Where it is empty (anonymised exports), files are
grouped by folder. Within a group, files of different size or orientation (localisers mixed
into a series) or echo number are split into separate sub-series, so that each series is one
volume.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> from pathlib import Path
    >>> folder = Path(get_testdata_file("DICOMDIR")).parent
    >>> scan = scan_series(folder)
    >>> len(scan.series) > 1
    True
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.fileset import FileSet

from medlabel.errors import ReadError, SeriesError, UnsupportedFormatError
from medlabel.io.dicom.headers import DicomFileInfo, iter_dicom_files, read_header

__all__ = [
    "SeriesInfo",
    "SeriesScan",
    "group_series",
    "scan_files",
    "scan_series",
    "select_series",
]


@dataclass
class SeriesInfo:
    """One series: the files whose slices make one volume (or one multi-frame file)."""

    index: int
    uid: str
    files: list[DicomFileInfo]

    @property
    def first(self) -> DicomFileInfo:
        """The header of the series' first file (by path)."""
        return self.files[0]

    @property
    def modality(self) -> str | None:
        """Modality of the series' first file."""
        return self.first.modality

    @property
    def description(self) -> str:
        """SeriesDescription (may be empty)."""
        return self.first.series_description

    @property
    def n_slices(self) -> int:
        """Number of frames over all files."""
        return sum(f.frames for f in self.files)

    @property
    def folder(self) -> Path:
        """The folder of the series' first file."""
        return self.first.path.parent

    def summary(self) -> dict[str, Any]:
        """A one-line description (no patient identifiers)."""
        return {
            "index": self.index,
            "uid": self.uid,
            "modality": self.modality,
            "description": self.description,
            "files": len(self.files),
            "slices": self.n_slices,
            "rows": self.first.rows,
            "columns": self.first.columns,
            "folder": str(self.folder),
        }


@dataclass
class SeriesScan:
    """Result of scanning a folder: the series, unreadable files and skipped non-images."""

    root: Path
    series: list[SeriesInfo] = field(default_factory=list)
    errors: list[ReadError] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def group_series(infos: list[DicomFileInfo], root: Path) -> list[SeriesInfo]:
    """Group file headers into series (by UID or folder, then by size and orientation)."""
    groups: dict[tuple[Any, ...], list[DicomFileInfo]] = defaultdict(list)
    for info in infos:
        base: tuple[Any, ...] = (
            ("uid", info.series_uid) if info.series_uid else ("folder", str(info.path.parent))
        )
        # Multi-frame files are volumes of their own, never merged with other files.
        if info.frames > 1:
            base = (*base, "file", str(info.path))
        groups[(*base, info.geometry_key())].append(info)
    per_base: dict[tuple[Any, ...], int] = defaultdict(int)
    for key in groups:
        per_base[key[:-1]] += 1
    out: list[SeriesInfo] = []
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    for key in sorted(groups, key=lambda k: str(sorted(str(f.path) for f in groups[k])[0])):
        files = sorted(groups[key], key=lambda f: str(f.path))
        base = key[:-1]
        seen[base] += 1
        if base[0] == "uid":
            uid = str(base[1])
        else:
            rel = os.path.relpath(base[1], root) if Path(base[1]) != root else "."
            uid = f"folder:{rel}"
        if len(base) > 2:
            uid = f"{uid}:{files[0].path.name}"
        if per_base[base] > 1:
            uid = f"{uid}#{seen[base]}"
        out.append(SeriesInfo(index=len(out), uid=uid, files=files))
    return out


def scan_series(path: str | os.PathLike[str]) -> SeriesScan:
    """List the series below a folder, or those referenced by a DICOMDIR file.

    Raises:
        ReadError: the path does not exist or a DICOMDIR cannot be read.
    """
    p = Path(path)
    if not p.exists():
        raise ReadError(p, "no such file or folder")
    if p.is_file() and p.name.upper() == "DICOMDIR":
        return _scan_dicomdir(p)
    root = p if p.is_dir() else p.parent
    return _collect(root, iter_dicom_files(root) if p.is_dir() else [read_header(p)])


def scan_files(paths: Iterable[str | os.PathLike[str]], root: Path) -> SeriesScan:
    """The series formed by given DICOM files (ids relative to ``root``); unreadable files
    are listed in ``errors``, files without an image in ``skipped``."""

    def headers() -> Iterator[DicomFileInfo | ReadError]:
        for path in paths:
            try:
                yield read_header(path)
            except ReadError as err:
                yield err
            except UnsupportedFormatError as err:
                yield ReadError(err.path, err.reason)

    return _collect(root, headers())


def _collect(root: Path, headers: Iterable[DicomFileInfo | ReadError]) -> SeriesScan:
    scan = SeriesScan(root=root)
    infos = []
    for item in headers:
        if isinstance(item, ReadError):
            scan.errors.append(item)
        elif not item.is_image:
            scan.skipped.append((item.path, f"no image (SOP class {item.sop_class_uid})"))
        else:
            infos.append(item)
    scan.series = group_series(infos, root)
    return scan


def _scan_dicomdir(path: Path) -> SeriesScan:
    try:
        fs = FileSet(pydicom.dcmread(path))
    except Exception as exc:
        raise ReadError(path, f"DICOMDIR cannot be read ({exc})") from exc
    scan = SeriesScan(root=path.parent)
    infos = []
    for instance in fs:
        file = Path(instance.path)
        try:
            info = read_header(file)
        except ReadError as err:
            scan.errors.append(err)
            continue
        if info.is_image:
            infos.append(info)
        else:
            scan.skipped.append((file, f"no image (SOP class {info.sop_class_uid})"))
    scan.series = group_series(infos, path.parent)
    return scan


def select_series(scan: SeriesScan, series: str | int | None = None) -> SeriesInfo:
    """Pick one series by UID (or unique UID prefix) or index; the only one when ``None``.

    Raises:
        SeriesError: no series, several series and no choice, or no match.
    """
    if not scan.series:
        reason = "no DICOM image series found"
        if scan.errors:
            reason += f"; {len(scan.errors)} unreadable file(s), first: {scan.errors[0]}"
        elif scan.skipped:
            reason += f" ({len(scan.skipped)} DICOM file(s) hold no image)"
        raise SeriesError(scan.root, reason)
    if series is None:
        if len(scan.series) > 1:
            listing = "; ".join(
                f"[{s.index}] {s.uid} {s.modality or '?'} {s.n_slices} slice(s)"
                for s in scan.series[:6]
            )
            more = "" if len(scan.series) <= 6 else f"; ... {len(scan.series) - 6} more"
            raise SeriesError(
                scan.root,
                f"folder holds {len(scan.series)} series ({listing}{more}); choose one with "
                "series=INDEX|UID (CLI: --series)",
            )
        return scan.series[0]
    if isinstance(series, int) or (isinstance(series, str) and series.isdigit()):
        idx = int(series)
        if 0 <= idx < len(scan.series):
            return scan.series[idx]
        raise SeriesError(scan.root, f"series index {idx} out of range 0..{len(scan.series) - 1}")
    matches = [s for s in scan.series if s.uid == series] or [
        s for s in scan.series if s.uid.startswith(series)
    ]
    if len(matches) == 1:
        return matches[0]
    what = "matches no series" if not matches else f"matches {len(matches)} series"
    raise SeriesError(scan.root, f"series {series!r} {what}")
