"""Reading DICOM Segmentation objects (SEG) into label maps, through highdicom.

Segments are combined into one label map whose values are the segment numbers; segment labels
are kept in ``metadata["segments"]``. A SEG of a projection radiograph (CR, DX: frames with no
position in the patient) becomes a 2D label map on the source image's pixel grid, with the
SEG's pixel spacing where it gives a positive one, as medlabel reads such a radiograph.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> path = get_testdata_file("seg_fractional.dcm")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medlabel.errors import ReadError
from medlabel.image import SPACING_UNKNOWN, MedicalImage
from medlabel.io.dicom.headers import positive_pair

__all__ = ["read_dicom_seg"]


def read_dicom_seg(path: str | Path, dataset: Dataset | None = None) -> MedicalImage:
    """Read a DICOM SEG file as a label map (``is_label=True``) on the SEG's own grid.

    Raises:
        ReadError: the segmentation cannot be decoded or its frames do not form a volume.
    """
    p = Path(path)
    try:
        ds = dataset if dataset is not None else pydicom.dcmread(p)
        _drop_invalid_pixel_measures(ds)
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        if _projection(seg):
            return _projection_label_map(seg, p)
        volume = seg.get_volume(combine_segments=True, relabel=False)
    except ReadError:
        raise
    except Exception as exc:  # highdicom raises plain ValueError/RuntimeError on bad input
        raise ReadError(p, f"DICOM SEG cannot be turned into a label map ({exc})") from exc
    if volume is None:
        raise ReadError(p, "DICOM SEG frames do not lie on a regular 3D grid")
    # highdicom orders axes (slice, row, column); ITK wants x = column, y = row, z = slice.
    aff = np.asarray(volume.affine, dtype=float)
    array = np.asarray(volume.array)
    steps = [aff[:3, 2], aff[:3, 1], aff[:3, 0]]
    spacing = [float(np.linalg.norm(v)) for v in steps]
    direction = np.column_stack([v / s for v, s in zip(steps, spacing, strict=True)])
    origin = aff[:3, 3].copy()
    if np.linalg.det(direction) < 0:  # slices run against the normal: flip to a proper frame
        origin = origin + steps[2] * (array.shape[0] - 1)
        direction[:, 2] *= -1
        array = array[::-1]
    return MedicalImage(
        np.ascontiguousarray(array),
        spacing=tuple(spacing),
        origin=tuple(origin),
        direction=tuple(direction.ravel()),
        modality="SEG",
        metadata=_metadata(seg, p),
        is_label=True,
    )


def _drop_invalid_pixel_measures(ds: Dataset) -> None:
    """Remove Pixel Measures items without a positive PixelSpacing (in memory only).

    highdicom copies a radiograph's ``0\\0`` spacing into the SEGs it writes and then refuses
    to read them back; without the item the SEG reads as having no known pixel size.
    """
    groups = [
        *ds.get("SharedFunctionalGroupsSequence", []),
        *ds.get("PerFrameFunctionalGroupsSequence", []),
    ]
    for group in groups:
        measures = group.get("PixelMeasuresSequence")
        if not measures:
            continue
        if positive_pair(measures[0].get("PixelSpacing")) is None:
            del group.PixelMeasuresSequence


def _metadata(seg: hd.seg.Segmentation, path: Path) -> dict[str, Any]:
    return {
        "segments": {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence},
        "SeriesInstanceUID": str(seg.SeriesInstanceUID),
        "StudyInstanceUID": str(seg.StudyInstanceUID),
        "source_files": [str(path)],
    }


def _projection(seg: hd.seg.Segmentation) -> bool:
    """Whether the SEG's frames have no position in the patient (a projection radiograph's)."""
    return "FrameOfReferenceUID" not in seg and "ImageOrientationSlide" not in seg


def _projection_label_map(seg: hd.seg.Segmentation, path: Path) -> MedicalImage:
    sources = [
        str(ref.ReferencedSOPInstanceUID)
        for series in seg.get("ReferencedSeriesSequence", [])
        for ref in series.get("ReferencedInstanceSequence", [])
    ]
    if len(sources) != 1:
        raise ReadError(
            path, f"a projection SEG referencing {len(sources)} images, not one: no label map"
        )
    array = seg.get_pixels_by_source_instance(sources, combine_segments=True, relabel=False)[0]
    meta = _metadata(seg, path)
    spacing = (1.0, 1.0)
    shared = seg.get("SharedFunctionalGroupsSequence") or [Dataset()]
    measures = shared[0].get("PixelMeasuresSequence") or [Dataset()]
    rows_cols = positive_pair(measures[0].get("PixelSpacing"))
    if rows_cols is not None:
        spacing = (rows_cols[1], rows_cols[0])
    else:
        meta[SPACING_UNKNOWN] = True
    return MedicalImage(
        np.ascontiguousarray(array),
        spacing=spacing,
        modality="SEG",
        metadata=meta,
        is_label=True,
    )
