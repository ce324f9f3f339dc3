"""Finding the items of an archive: one per image file, one per DICOM series.

:func:`discover` walks a file, a folder tree or a CSV list once. DICOM files are grouped
into series (a series is one item, read as one volume; radiographs without slice positions
stay one item per file); NIfTI, NRRD, MetaImage and PNG/JPEG/TIFF/BMP files are one item
each. Files that are not images at all (notes, spreadsheets, JSON, DICOM reports and DICOM
Segmentations) are passed over and counted; files that look like images but cannot even be
scanned become items that fail with their reason, so that nothing the user gave disappears
silently.

Ids are stable across runs: the path relative to the input root, made filename-safe, plus a
short hash that keeps different sources with similar names apart. The files of an item are
absolute paths (symbolic links kept), so a job's manifest can be read from any folder.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.io import write_image
    >>> from medlabel.image import MedicalImage
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(MedicalImage(np.zeros((8, 8), np.uint8)), root / "a b.png")
    >>> _ = (root / "notes.txt").write_text("not an image")
    >>> found = discover(root)
    >>> [i.source for i in found.items], found.ignored
    (['a b.png'], 1)
    >>> found.items[0].id.startswith("a_b.png-")
    True
    >>> pathlib.Path(found.items[0].files[0]).is_absolute()
    True
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medlabel.errors import ReadError
from medlabel.image import MedicalImage
from medlabel.io.formats import detect_format, is_dicom_file

__all__ = ["Discovery", "Item", "content_hash", "discover", "read_item"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Segmentation Storage and Label Map Segmentation Storage
_SEGMENTATION_SOP_CLASSES = ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")


@dataclass(frozen=True)
class Item:
    """One unit of work: an image file or a DICOM series.

    Attributes:
        id: stable, filename-safe identifier.
        source: the path relative to the input root (for a series, its folder), as shown to
            users.
        kind: ``file``, ``dicom-series`` or ``dicom-file``.
        files: absolute paths of the files it is read from.
        modality: DICOM modality when known from the headers (``None`` otherwise).
        series_uid: DICOM SeriesInstanceUID (``""`` for other formats).
        error: why it cannot be read, when discovery already knows.
    """

    id: str
    source: str
    kind: str
    files: tuple[str, ...]
    modality: str | None = None
    series_uid: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "id": self.id,
            "source": self.source,
            "kind": self.kind,
            "files": list(self.files),
            "modality": self.modality,
            "series_uid": self.series_uid,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "files": tuple(data["files"])})


@dataclass
class Discovery:
    """The items found below a root, and the non-image files passed over.

    Attributes:
        root: the folder that sources and ids are relative to.
        items: the items, in discovery order.
        ignored: how many files were passed over as not images (notes, spreadsheets, DICOM
            files without an image such as reports, and DICOM Segmentations).
        passed_over: ``(source, reason)`` for the passed-over files whose reason is known
            (the DICOM ones).
    """

    root: Path
    items: list[Item] = field(default_factory=list)
    ignored: int = 0
    passed_over: list[tuple[str, str]] = field(default_factory=list)


def _make_id(source: str, salt: str = "", name: str | None = None) -> str:
    """A file-name-safe id: the source's path as a slug (or ``name``), and a hash of both.

    The slug never starts with a dot, so output files named by the id are not hidden.
    """
    slug = name if name is not None else source
    slug = _SAFE.sub("_", slug.replace(os.sep, "__").replace("/", "__")).strip("_.") or "item"
    digest = hashlib.sha1(f"{source}\0{salt}".encode()).hexdigest()[:8]
    return f"{slug[-80:]}-{digest}"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _is_segmentation(info: Any) -> bool:
    """Whether a DICOM file is a segmentation (SEG, label map SEG) rather than an image."""
    return str(info.sop_class_uid) in _SEGMENTATION_SOP_CLASSES or info.modality == "SEG"


def _dicom_items(paths: list[Path], root: Path, discovery: Discovery) -> Iterator[Item]:
    """Items of the DICOM files; files without an image to annotate (reports, presentation
    states, segmentations) are counted in ``discovery`` with their reason."""
    from medlabel.io.dicom.series import SeriesInfo, scan_files

    scan = scan_files(paths, root)
    for err in scan.errors:
        p = Path(err.path) if err.path is not None else root
        yield Item(
            _make_id(_rel(p, root)), _rel(p, root), "dicom-file", (str(p),), error=err.reason
        )
    for path, reason in scan.skipped:
        discovery.ignored += 1
        discovery.passed_over.append((_rel(Path(path), root), reason))
    for whole in scan.series:
        for f in whole.files:
            if _is_segmentation(f):  # a label map made from other images: nothing to label
                discovery.ignored += 1
                discovery.passed_over.append(
                    (_rel(f.path, root), "a DICOM Segmentation (SEG), not an image to annotate")
                )
        images = [f for f in whole.files if not _is_segmentation(f)]
        if not images:
            continue
        series = SeriesInfo(whole.index, whole.uid, images)
        flat = len(series.files) > 1 and any(f.ipp is None or f.iop is None for f in series.files)
        if len(series.files) == 1 or flat:  # single files, or projections sharing a series
            for f in series.files:
                src = _rel(f.path, root)
                yield Item(
                    _make_id(src), src, "dicom-file", (str(f.path),), f.modality, f.series_uid
                )
            continue
        src = _rel(series.folder, root) if series.folder != root else "."
        # a series that is the archive itself is named after its folder, not "."
        yield Item(
            _make_id(src, series.uid, name=root.name if src == "." else None),
            src,
            "dicom-series",
            tuple(str(f.path) for f in series.files),
            series.modality,
            series.uid,
        )


def _from_paths(
    paths: list[Path], root: Path, discovery: Discovery, exclude: Path | None = None
) -> None:
    dicom: list[Path] = []
    for p in sorted(paths):
        if p.name.startswith(".") or p.name.upper() == "DICOMDIR":
            continue
        if exclude is not None and p.resolve().is_relative_to(exclude):
            continue
        fmt = detect_format(p)
        if fmt == "dicom" or (fmt is None and is_dicom_file(p)):
            dicom.append(p)
        elif fmt is None or fmt == "medmnist":
            discovery.ignored += 1
        else:
            src = _rel(p, root)
            discovery.items.append(Item(_make_id(src), src, "file", (str(p),)))
    discovery.items.extend(_dicom_items(dicom, root, discovery))


def _csv_paths(path: Path) -> list[Path]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "path" not in rows[0]:
        raise ReadError(path, "a CSV list needs a 'path' column")
    out = []
    for row in rows:
        p = Path(row["path"])
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def discover(
    source: str | os.PathLike[str], *, exclude: str | os.PathLike[str] | None = None
) -> Discovery:
    """The items of a file, a folder tree or a CSV list (column ``path``).

    Paths in a CSV are relative to the CSV's folder; a listed folder contributes every item
    below it; a listed path that does not exist becomes a failed item. Files below
    ``exclude`` (the job's own output folder, when it lies inside the input) are passed over,
    and so are medlabel's earlier outputs inside a folder (annotation jobs, evaluations).
    Item files are absolute paths (:meth:`pathlib.Path.absolute`: symbolic links are kept);
    ids and sources are relative to the input, as given.

    Raises:
        ReadError: ``source`` does not exist, or a CSV without a ``path`` column.
    """
    found = _discover(source, exclude=exclude)
    found.items = [
        replace(i, files=tuple(str(Path(f).absolute()) for f in i.files)) for i in found.items
    ]
    return found


def _discover(
    source: str | os.PathLike[str], *, exclude: str | os.PathLike[str] | None = None
) -> Discovery:
    """:func:`discover` with the files as found (relative when ``source`` is)."""
    src = Path(source)
    skip = Path(exclude).resolve() if exclude is not None else None
    if not src.exists():
        raise ReadError(src, "no such file or folder")
    if src.is_file() and src.suffix.lower() == ".csv":
        root = src.parent
        discovery = Discovery(root=root)
        files: list[Path] = []
        for p in _csv_paths(src):
            if p.is_dir():
                files += _outside_outputs(p, discovery, root)
            elif p.is_file():
                files.append(p)
            else:
                rel = _rel(p, root)
                discovery.items.append(
                    Item(_make_id(rel), rel, "file", (str(p),), error="no such file or folder")
                )
        _from_paths(files, root, discovery, skip)
        return discovery
    if src.is_file():
        discovery = Discovery(root=src.parent)
        _from_paths([src], src.parent, discovery)
        if not discovery.items:
            why = discovery.passed_over[0][1] if discovery.passed_over else ""
            raise ReadError(src, why or "not an image file medlabel can read")
        return discovery
    discovery = Discovery(root=src)
    _from_paths(_outside_outputs(src, discovery, src), src, discovery, skip)
    return discovery


def _outside_outputs(folder: Path, discovery: Discovery, root: Path) -> list[Path]:
    """The files below ``folder``, less those of medlabel's own outputs inside it (an earlier
    annotation job, holding ``.medlabel/journal.jsonl``; an evaluation, holding ``metrics.json``
    beside ``report.html``): their masks, overlays and thumbnails are not studies to annotate.
    Each such folder is passed over once, with its reason."""
    files = [f for f in folder.rglob("*") if f.is_file()]
    outputs: dict[Path, str] = {}
    for f in files:
        if f.name == "journal.jsonl" and f.parent.name == ".medlabel":
            outputs[f.parent.parent] = "an earlier medlabel annotation job's output"
        elif f.name == "metrics.json" and (f.parent / "report.html").is_file():
            outputs.setdefault(f.parent, "a medlabel evaluation's output")
    outputs.pop(folder, None)  # the input itself is what was asked for
    if not outputs:
        return files
    for out, why in sorted(outputs.items()):
        discovery.ignored += 1
        discovery.passed_over.append((_rel(out, root) + "/", f"{why}, not studies to annotate"))
    return [f for f in files if not any(f.is_relative_to(out) for out in outputs)]


def content_hash(item: Item) -> str:
    """A digest of the bytes of the item's files (BLAKE2b), so that a rerun notices changes.

    Unreadable files hash to their error, which keeps failed items redoable.
    """
    h = hashlib.blake2b(digest_size=16)
    for name in item.files:
        h.update(name.encode())
        try:
            with Path(name).open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            h.update(f"unreadable: {exc}".encode())
    return h.hexdigest()


def read_item(
    item: Item,
    *,
    irregular: Literal["error", "warn", "resample"] = "error",
    tilt: Literal["error", "resample"] = "error",
    invert_monochrome1: bool = True,
) -> MedicalImage:
    """Read an item as one image (a DICOM series as one volume); ``irregular``, ``tilt`` and
    ``invert_monochrome1`` as for :func:`medlabel.io.read_image`.

    Raises:
        MedlabelError: the item cannot be read; the message names the file and the reason.
    """
    from medlabel.io import read_image

    if item.error:
        raise ReadError(item.files[0] if item.files else item.source, item.error)
    if item.kind == "dicom-series":
        from medlabel.io.dicom.headers import read_header
        from medlabel.io.dicom.reader import read_dicom_series
        from medlabel.io.dicom.series import SeriesInfo

        infos = [read_header(p) for p in item.files]
        return read_dicom_series(
            SeriesInfo(0, item.series_uid, infos),
            invert_monochrome1=invert_monochrome1,
            irregular=irregular,
            tilt=tilt,
            workers=1,
        )
    return read_image(
        item.files[0], irregular=irregular, tilt=tilt, invert_monochrome1=invert_monochrome1
    )
