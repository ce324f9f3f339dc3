"""Reading DICOM files, series folders and DICOMDIRs into :class:`MedicalImage`.

* A single file: a projection radiograph (CR, DX, US, ...) becomes a 2D image; a slice with a
  patient position (CT, MR) becomes a one-slice 3D volume that keeps its place in space;
  an enhanced multi-frame file (CT, MR) becomes a volume ordered by its per-frame positions,
  and an RT dose (or other multi-frame file) one placed by its GridFrameOffsetVector.
* A folder (searched recursively) or a DICOMDIR: the series in it are listed and one is read
  (``series=`` picks by index or UID when there are several).

Example:
    >>> from pydicom.data import get_testdata_file
    >>> img = read_dicom(get_testdata_file("CT_small.dcm"))
    >>> img.modality, img.size, img.dtype.name
    ('CT', (128, 128, 1), 'int32')
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from tqdm import tqdm

from medlabel.errors import ReadError, SeriesError
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io.dicom.geometry import (
    SPACING_ATOL,
    IrregularPolicy,
    StackPlan,
    TiltPolicy,
    apply_plan,
    plan_stack,
)
from medlabel.io.dicom.headers import SEG_SOP_CLASS, positive_pair, to_floats
from medlabel.io.dicom.pixels import (
    check_decodable,
    decode_pixels,
    frame_count,
    invert_monochrome1,
    modality_transform,
    rescaled_dtype,
    stored_range,
)
from medlabel.io.dicom.series import SeriesInfo, scan_series, select_series
from medlabel.io.formats import has_dicom_preamble

__all__ = ["read_dicom", "read_dicom_file", "read_dicom_series"]

log = logging.getLogger(__name__)

# Header fields kept in ``MedicalImage.metadata``; identifiers among them are never logged.
_META_KEYWORDS = (
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "StudyDate",
    "AccessionNumber",
    "SeriesDescription",
    "SeriesNumber",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "RescaleType",
    "SliceThickness",
    "SOPClassUID",
)


def _dcmread(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path, force=not has_dicom_preamble(path))
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(path, f"not a readable DICOM file ({exc})") from exc
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        # Files without a meta header (ACR-NEMA style): name the encoding they were read with.
        implicit, little = ds.original_encoding
        if not hasattr(ds, "file_meta"):
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
    return ds


def _metadata(ds: Dataset, files: Sequence[Path]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in _META_KEYWORDS:
        value = ds.get(key)
        if value not in (None, ""):
            meta[key] = str(value)
    wc, ww = to_floats(ds.get("WindowCenter")), to_floats(ds.get("WindowWidth"))
    if wc and ww:
        meta["window"] = [wc[0], ww[0]]
    meta["source_files"] = [str(f) for f in files]
    return meta


def _pixel_spacing(
    ds: Dataset, extra: dict[str, Any], fallback: tuple[float, ...] | None = None
) -> tuple[float, float]:
    """(row spacing, column spacing) from PixelSpacing, ImagerPixelSpacing or
    NominalScannedPixelSpacing; else 1, and ``extra`` records that the pixel size is unknown."""
    detector = positive_pair(ds.get("ImagerPixelSpacing"))
    for candidate in (
        fallback,
        to_floats(ds.get("PixelSpacing")),
        detector,
        to_floats(ds.get("NominalScannedPixelSpacing")),
    ):
        ok = positive_pair(candidate)
        if ok:
            if fallback is None and str(ds.get("SOPClassUID", "")) in _GDCM_DETECTOR_ONLY:
                _warn_if_itk_differs(ds, (float(ok[0]), float(ok[1])), detector, extra)
            return float(ok[0]), float(ok[1])
    return _unknown_spacing(extra)


#: Projection radiograph classes whose pixel size SimpleITK (GDCM) takes from
#: ImagerPixelSpacing alone (CR, DX for presentation and processing, MG, XA, RF): checked
#: against SimpleITK 2.5 tag by tag.
_GDCM_DETECTOR_ONLY = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.1",
        "1.2.840.10008.5.1.4.1.1.1.1",
        "1.2.840.10008.5.1.4.1.1.1.1.1",
        "1.2.840.10008.5.1.4.1.1.1.2",
        "1.2.840.10008.5.1.4.1.1.12.1",
        "1.2.840.10008.5.1.4.1.1.12.2",
    }
)


def _warn_if_itk_differs(
    ds: Dataset,
    ours: tuple[float, float],
    detector: tuple[float, ...] | None,
    extra: dict[str, Any],
) -> None:
    theirs = (float(detector[0]), float(detector[1])) if detector else (1.0, 1.0)
    if np.allclose(ours, theirs):
        return
    why = (
        f"ImagerPixelSpacing {theirs[0]:g}\\{theirs[1]:g} (at the detector)"
        if detector
        else "1 mm (this file has no ImagerPixelSpacing)"
    )
    extra.setdefault("warnings", []).append(
        f"medlabel takes the pixel size from PixelSpacing {ours[0]:g}\\{ours[1]:g} (at the "
        f"patient); SimpleITK and ITK-SNAP read this {ds.get('Modality', 'radiograph')} at "
        f"{why}: compare masks there as DICOM SEG, which refers to the radiograph's pixels"
    )


def _unknown_spacing(extra: dict[str, Any]) -> tuple[float, float]:
    extra[SPACING_UNKNOWN] = True
    return 1.0, 1.0


def _slice_spacing(ds: Dataset, measures: Dataset | None = None) -> float:
    """Spacing along the normal for a lone slice or frame.

    Classic files: SpacingBetweenSlices, else 1 mm (as SimpleITK; SliceThickness is the
    slab's thickness, not a spacing, and stays in the metadata). Enhanced files: the pixel
    measures' SpacingBetweenSlices, then SliceThickness, then 1 mm.
    """
    keys = (
        ("SpacingBetweenSlices", "SliceThickness")
        if measures is not None
        else ("SpacingBetweenSlices",)
    )
    for src in (measures, ds):
        if src is None:
            continue
        for key in keys:
            val = to_floats(src.get(key))
            if val and val[0] > 0:
                return float(val[0])
    return 1.0


def _values(ds: Dataset, stored: np.ndarray, invert: bool) -> tuple[np.ndarray, bool]:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if invert and photometric == "MONOCHROME1":
        return invert_monochrome1(stored, stored_range(ds)), True
    return stored, False


def _rescale(src: Dataset | None) -> tuple[float, float] | None:
    if src is None or ("RescaleSlope" not in src and "RescaleIntercept" not in src):
        return None
    slope = to_floats(src.get("RescaleSlope")) or (1.0,)
    intercept = to_floats(src.get("RescaleIntercept")) or (0.0,)
    return slope[0], intercept[0]


def _first_item(seq: Any) -> Dataset | None:
    return seq[0] if seq else None


def _frame_group(ds: Dataset, frame: int, name: str) -> Dataset | None:
    """Functional group ``name`` of ``frame``: per-frame first, then shared."""
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per and frame < len(per) and name in per[frame]:
        return _first_item(per[frame].get(name))
    shared = _first_item(ds.get("SharedFunctionalGroupsSequence"))
    if shared is not None and name in shared:
        return _first_item(shared.get(name))
    return None


def _image(
    array: np.ndarray,
    *,
    spacing: Sequence[float] | np.ndarray,
    origin: Sequence[float] | np.ndarray,
    direction: Sequence[float] | np.ndarray,
    ds: Dataset,
    files: Sequence[Path],
    extra: dict[str, Any],
) -> MedicalImage:
    meta = _metadata(ds, files)
    meta.update(extra)
    modality = str(ds.Modality) if ds.get("Modality") else None
    return MedicalImage(
        array,
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in direction),
        modality=modality,
        metadata=meta,
    )


def read_dicom_file(
    path: str | os.PathLike[str],
    *,
    invert_monochrome1: bool = True,
    irregular: IrregularPolicy = "error",
    tilt: TiltPolicy = "error",
) -> MedicalImage:
    """Read one DICOM file (single-frame or multi-frame).

    Args:
        path: the file.
        invert_monochrome1: turn MONOCHROME1 (high = dark) into high = bright.
        irregular: policy for uneven frame spacing in enhanced multi-frame files and in
            files placed by GridFrameOffsetVector (RT dose).
        tilt: policy for sheared frame stacks.

    Raises:
        ReadError, UnsupportedFormatError, SeriesError: with the file and the reason.
    """
    p = Path(path)
    ds = _dcmread(p)
    if len(ds) == 0:  # pydicom gives up silently on some files cut short
        raise ReadError(p, "no DICOM data elements could be read: the file is truncated or damaged")
    if "Rows" not in ds:
        raise ReadError(p, f"DICOM file holds no image (SOP class {ds.get('SOPClassUID', '?')})")
    if str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS:
        from medlabel.io.dicom.seg import read_dicom_seg

        return read_dicom_seg(p, ds)
    check_decodable(ds, p)
    _, frames_warning = frame_count(ds, p)
    stored = decode_pixels(ds, p)
    stored, inverted = _values(ds, stored, invert_monochrome1)
    frames = stored.shape[0]
    extra: dict[str, Any] = {"inverted_monochrome1": inverted} if inverted else {}
    if frames_warning:
        extra["warnings"] = [frames_warning]
        log.warning("%s: %s", p.name, frames_warning)

    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and _frame_group(ds, 0, "PlanePositionSequence") is not None:
        return _read_enhanced(p, ds, stored, extra, irregular=irregular, tilt=tilt)

    rescale = _rescale(ds) or (1.0, 0.0)
    dtype = rescaled_dtype(stored_range(ds), [rescale[0]], [rescale[1]], stored.dtype)
    values = modality_transform(stored, rescale[0], rescale[1], dtype)
    iop, ipp = (
        to_floats(ds.get("ImageOrientationPatient")),
        to_floats(ds.get("ImagePositionPatient")),
    )
    dy, dx = _pixel_spacing(ds, extra)
    if iop is not None and len(iop) == 6 and ipp is not None and len(ipp) == 3:
        offsets = to_floats(ds.get("GridFrameOffsetVector"))
        if offsets is not None:
            plan = _grid_frame_plan(
                p, ipp, iop, offsets, frames, (dy, dx), irregular=irregular, tilt=tilt
            )
            if plan.warnings:
                extra["warnings"] = [*extra.get("warnings", []), *plan.warnings]
            values = apply_plan(plan, list(values), fill=float(values.min()))
        else:
            plan = plan_stack(
                np.asarray([ipp]), iop, source=str(p), default_spacing=_slice_spacing(ds)
            )
        return _image(
            values,
            spacing=(dx, dy, plan.spacing_z),
            origin=plan.origin,
            direction=plan.direction.ravel(),
            ds=ds,
            files=[p],
            extra=extra,
        )
    if frames == 1:
        return _image(
            values[0],
            spacing=(dx, dy),
            origin=(0.0, 0.0),
            direction=(1.0, 0.0, 0.0, 1.0),
            ds=ds,
            files=[p],
            extra=extra,
        )
    extra["geometry"] = "frames without patient position: 1 mm identity grid assumed"
    log.warning("%s: multi-frame file has no patient geometry; frames stacked 1 mm apart", p.name)
    return _image(
        values,
        spacing=(dx, dy, 1.0),
        origin=(0.0, 0.0, 0.0),
        direction=np.eye(3).ravel(),
        ds=ds,
        files=[p],
        extra=extra,
    )


def _grid_frame_plan(
    path: Path,
    ipp: Sequence[float],
    iop: Sequence[float],
    offsets: Sequence[float],
    frames: int,
    pixel_spacing: tuple[float, float],
    *,
    irregular: IrregularPolicy,
    tilt: TiltPolicy,
) -> StackPlan:
    """Stack the frames of a file placed by GridFrameOffsetVector (RT dose, some NM).

    The offsets are distances along the normal from ImagePositionPatient (the first is
    usually 0); an axial file whose first offset equals its ImagePositionPatient z holds
    absolute z positions instead (both as in the DICOM standard). Frames are then ordered and
    checked like the slices of a series: descending offsets are sorted, uneven ones follow
    ``irregular``. A lone frame takes the first step of the vector as its thickness, as
    SimpleITK does.

    Raises:
        ReadError: as many offsets as frames are needed for several frames.
        SliceSpacingError, SeriesError: uneven or repeated offsets.
    """
    grid = np.asarray(offsets, dtype=float)
    axial = np.allclose(iop, (1, 0, 0, 0, 1, 0), atol=1e-6)
    if axial and abs(grid[0]) > SPACING_ATOL and abs(grid[0] - ipp[2]) < SPACING_ATOL:
        grid = grid - grid[0]
    steps = np.abs(np.diff(grid))
    thickness = float(steps[0]) if steps.size and steps[0] > 0 else 1.0
    if frames == 1:
        grid = grid[:1]
    elif len(grid) != frames:
        raise ReadError(path, f"GridFrameOffsetVector has {len(grid)} offsets for {frames} frames")
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    normal = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    normal /= np.linalg.norm(normal)
    positions = np.asarray(ipp, dtype=float)[None, :] + grid[:, None] * normal[None, :]
    return plan_stack(
        positions,
        iop,
        pixel_spacing=pixel_spacing,
        source=str(path),
        names=[f"frame {i + 1} (offset {g:g} mm)" for i, g in enumerate(grid)],
        irregular=irregular,
        tilt=tilt,
        default_spacing=thickness,
    )


def _read_enhanced(
    path: Path,
    ds: Dataset,
    stored: np.ndarray,
    extra: dict[str, Any],
    *,
    irregular: IrregularPolicy,
    tilt: TiltPolicy,
) -> MedicalImage:
    frames = stored.shape[0]
    ipps, iops, rescales = [], [], []
    top = _rescale(ds)
    for i in range(frames):
        pos = _frame_group(ds, i, "PlanePositionSequence")
        ipp = to_floats(pos.get("ImagePositionPatient")) if pos is not None else None
        orient = _frame_group(ds, i, "PlaneOrientationSequence")
        iop = to_floats(orient.get("ImageOrientationPatient")) if orient is not None else None
        if ipp is None or iop is None:
            raise ReadError(path, f"frame {i + 1} has no plane position or orientation")
        ipps.append(ipp)
        iops.append(iop)
        rescales.append(
            _rescale(_frame_group(ds, i, "PixelValueTransformationSequence")) or top or (1.0, 0.0)
        )
    if not np.allclose(iops, iops[0], atol=1e-4):
        raise SeriesError(path, "frames have different orientations (several stacks in one file)")
    measures = _frame_group(ds, 0, "PixelMeasuresSequence")
    fallback = to_floats(measures.get("PixelSpacing")) if measures is not None else None
    extra = dict(extra)
    dy, dx = _pixel_spacing(ds, extra, fallback)
    plan = plan_stack(
        np.asarray(ipps),
        iops[0],
        pixel_spacing=(dy, dx),
        source=str(path),
        names=[f"frame {i + 1}" for i in range(frames)],
        irregular=irregular,
        tilt=tilt,
        default_spacing=_slice_spacing(ds, measures),
    )
    dtype = rescaled_dtype(
        stored_range(ds), [r[0] for r in rescales], [r[1] for r in rescales], stored.dtype
    )
    slices = [modality_transform(stored[i], *rescales[i], dtype) for i in range(frames)]
    if plan.warnings:
        extra = {**extra, "warnings": [*extra.get("warnings", []), *plan.warnings]}
    return _image(
        apply_plan(plan, slices, fill=float(np.min(slices[0]))),
        spacing=(dx, dy, plan.spacing_z),
        origin=plan.origin,
        direction=plan.direction.ravel(),
        ds=ds,
        files=[path],
        extra=extra,
    )


@dataclass
class _Slice:
    """One decoded slice: stored values (MONOCHROME1 already inverted) and its rescale."""

    values: np.ndarray
    slope: float
    intercept: float
    inverted: bool
    srange: tuple[int, int]


def _decode_slice(path: Path, invert_monochrome1: bool) -> _Slice:
    ds = _dcmread(path)
    check_decodable(ds, path)
    stored = decode_pixels(ds, path)
    if stored.shape[0] != 1:
        raise SeriesError(path, "multi-frame file inside a multi-file series")
    values, inverted = _values(ds, stored[0], invert_monochrome1)
    slope, intercept = _rescale(ds) or (1.0, 0.0)
    return _Slice(values, slope, intercept, inverted, stored_range(ds))


def _decode_all(
    paths: Sequence[Path], invert: bool, workers: int | None, *, compressed: bool
) -> list[_Slice]:
    """Decode slices in input order, in parallel when it pays.

    Compressed slices (JPEG-2000, JPEG, RLE) spend their time in decoders that hold the GIL,
    so they go to a pool of forked processes; uncompressed ones are I/O bound and use threads.
    """
    n = workers or min(8, os.cpu_count() or 1)
    task = functools.partial(_decode_slice, invert_monochrome1=invert)
    progress = functools.partial(
        tqdm, total=len(paths), desc="decoding slices", unit="slice", leave=False, disable=None
    )
    if n <= 1 or len(paths) < 4:
        return [task(p) for p in progress(paths)]
    if compressed and "fork" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(n, mp_context=context) as pool:
            chunk = max(1, len(paths) // (4 * n))
            return list(progress(pool.map(task, paths, chunksize=chunk)))
    with ThreadPoolExecutor(n) as pool:
        return list(progress(pool.map(task, paths)))


def read_dicom_series(
    info: SeriesInfo,
    *,
    invert_monochrome1: bool = True,
    irregular: IrregularPolicy = "error",
    tilt: TiltPolicy = "error",
    workers: int | None = None,
) -> MedicalImage:
    """Read one series found by :func:`~medlabel.io.dicom.series.scan_series`.

    Args:
        info: the series.
        invert_monochrome1: turn MONOCHROME1 into high = bright.
        irregular: policy for missing slices or uneven spacing.
        tilt: policy for gantry tilt.
        workers: processes (compressed slices) or threads (uncompressed) decoding slices in
            parallel; default: one per CPU, at most 8; 1 decodes in this process.
    """
    if len(info.files) == 1:
        return read_dicom_file(
            info.first.path, invert_monochrome1=invert_monochrome1, irregular=irregular, tilt=tilt
        )
    source = str(info.folder)
    missing = [f.path.name for f in info.files if f.ipp is None or f.iop is None]
    if missing:
        raise SeriesError(
            source,
            f"{len(missing)} of {len(info.files)} files have no ImagePositionPatient/Orientation "
            f"(e.g. {missing[0]}): they are separate 2D images, read them one file at a time",
        )
    first = info.first
    plan = plan_stack(
        np.asarray([f.ipp for f in info.files]),
        first.iop or (),
        pixel_spacing=positive_pair(first.pixel_spacing) or (1.0, 1.0),
        source=source,
        names=[f.path.name for f in info.files],
        irregular=irregular,
        tilt=tilt,
    )

    paths = [f.path for f in info.files]
    loaded = _decode_all(paths, invert_monochrome1, workers, compressed=first.compressed)
    shapes = {d.values.shape for d in loaded}
    if len(shapes) > 1:
        raise SeriesError(source, f"slices have different shapes {sorted(shapes)}")
    dtype = rescaled_dtype(
        loaded[0].srange,
        [d.slope for d in loaded],
        [d.intercept for d in loaded],
        loaded[0].values.dtype,
    )
    slices = [modality_transform(d.values, d.slope, d.intercept, dtype) for d in loaded]
    ds0 = pydicom.dcmread(first.path, stop_before_pixels=True, force=True)
    volume = apply_plan(plan, slices, fill=float(min(s.min() for s in slices)))
    extra: dict[str, Any] = {}
    dy, dx = positive_pair(first.pixel_spacing) or _unknown_spacing(extra)
    if any(d.inverted for d in loaded):
        extra["inverted_monochrome1"] = True
    if plan.warnings:
        extra["warnings"] = plan.warnings
    ordered_files = [paths[i] for i in plan.order]
    return _image(
        volume,
        spacing=(dx, dy, plan.spacing_z),
        origin=plan.origin,
        direction=plan.direction.ravel(),
        ds=ds0,
        files=ordered_files,
        extra=extra,
    )


def read_dicom(
    path: str | os.PathLike[str],
    *,
    series: str | int | None = None,
    invert_monochrome1: bool = True,
    irregular: IrregularPolicy = "error",
    tilt: TiltPolicy = "error",
    workers: int | None = None,
) -> MedicalImage:
    """Read a DICOM file, a series folder (recursively) or a DICOMDIR.

    Args:
        path: file, folder or DICOMDIR.
        series: which series when the folder holds several (index or UID / UID prefix).
        invert_monochrome1: turn MONOCHROME1 into high = bright (default ``True``).
        irregular: ``error`` (default), ``warn`` or ``resample`` for gaps and uneven spacing.
        tilt: ``error`` (default) or ``resample`` for gantry tilt.
        workers: decoding threads.

    Raises:
        ReadError, SeriesError, UnsupportedFormatError: naming the file or folder and reason.
    """
    p = Path(path)
    if not p.exists():
        raise ReadError(p, "no such file or folder")
    if p.is_file() and p.name.upper() != "DICOMDIR":
        return read_dicom_file(
            p, invert_monochrome1=invert_monochrome1, irregular=irregular, tilt=tilt
        )
    scan = scan_series(p)
    chosen = select_series(scan, series)
    bad = [e for e in scan.errors if e.path is not None and e.path.parent == chosen.folder]
    if bad:
        raise ReadError(
            bad[0].path,
            f"{bad[0].reason} (in the folder of the series being read; "
            f"{len(bad)} unreadable file(s) there)",
        )
    return read_dicom_series(
        chosen,
        invert_monochrome1=invert_monochrome1,
        irregular=irregular,
        tilt=tilt,
        workers=workers,
    )
