"""DICOM Segmentation (highdicom) of a label map, referencing the DICOM files it was read from.

The SEG references the source series (study, series and every SOP instance) or one enhanced
multi-frame file, has one segment per class with its label and SNOMED CT codes
(:func:`segment_codes`), and lines up frame by frame with the source slices or frames.
Resampled series (uneven slices), multi-frame files without frame positions, sources
without a Frame of Reference UID and (unless the caller takes notes) sources with empty
Study or Series Instance UIDs get no SEG; :func:`write_dicom_seg` returns the reason.

Example:
    >>> category, kind = segment_codes("lung_left")
    >>> category.meaning, kind.meaning
    ('Anatomical Structure', 'Left lung')
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.image import MedicalImage
from medlabel.io.atomic import atomic_output
from medlabel.io.dicom.headers import positive_pair
from medlabel.io.dicom.pixels import frame_count

__all__ = ["segment_codes", "write_dicom_seg"]

# Patient and study attributes a SEG copies from its source (DICOM type 2: present, may be
# empty); de-identified exports often drop them.
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "ReferringPhysicianName",
    "AccessionNumber",
)


# SNOMED CT concepts that pydicom's code dictionary lacks: right and left lung structure
# (DICOM's CID 7151 names only "Lung", with laterality as a modifier)
_RIGHT_LUNG = ("3341006", "Right lung")
_LEFT_LUNG = ("44029006", "Left lung")


def segment_codes(name: str) -> tuple[Any, Any]:
    """Segmented property category and type of a class name.

    Organs and body parts are an *Anatomical Structure* (SCT 91723000) with their SNOMED CT
    code (``lung_right``: Right lung, 3341006; ``lung_left``: Left lung, 44029006; ``lung``,
    ``heart``, ``liver``, ``brain``, ``hippocampus``, ``head``, ``body``); bone, fat and soft
    tissue are a *Tissue* (SCT 85756007) of DICOM's CID 7166. Other names get a private code
    (scheme ``99MEDLABEL``) that carries the name, under *Tissue*.

    Example:
        >>> category, kind = segment_codes("lung_right")
        >>> category.meaning, kind.value, kind.meaning
        ('Anatomical Structure', '3341006', 'Right lung')
    """
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    words = set(re.split(r"[^a-z]+", name.lower()))
    structure, tissue = codes.SCT.AnatomicalStructure, codes.SCT.Tissue
    if "lung" in words and ({"right", "r"} & words) and not ({"left", "l"} & words):
        return structure, Code(_RIGHT_LUNG[0], "SCT", _RIGHT_LUNG[1])
    if "lung" in words and ({"left", "l"} & words) and not ({"right", "r"} & words):
        return structure, Code(_LEFT_LUNG[0], "SCT", _LEFT_LUNG[1])
    if "soft" in words and "tissue" in words:
        return tissue, codes.cid7166.SoftTissue
    if words & {"bone", "bones"}:
        return tissue, codes.cid7166.BoneTissue
    if words & {"fat", "adipose"}:
        return tissue, codes.cid7166.AdiposeTissue
    organs = {
        "lung": codes.SCT.Lung,
        "lungs": codes.SCT.Lung,
        "heart": codes.SCT.Heart,
        "liver": codes.SCT.Liver,
        "brain": codes.SCT.Brain,
        "hippocampus": codes.SCT.Hippocampus,
        "head": codes.SCT.Head,
        "body": codes.cid7151.EntireBody,
    }
    for word, code in organs.items():
        if word in words:
            return structure, code
    private = Code(value=name[:16] or "structure", scheme_designator="99MEDLABEL", meaning=name)
    return tissue, private


def write_dicom_seg(
    mask: MedicalImage,
    classes: dict[int, str],
    source_files: Sequence[str],
    path: str | os.PathLike[str],
    *,
    model_name: str,
    model_version: str,
    notes: list[str] | None = None,
) -> str | None:
    """Write a DICOM Segmentation of ``mask`` referencing ``source_files``.

    ``source_files`` are the series' files in the order of the mask's slices (as the reader
    records them in ``metadata["source_files"]``), or one enhanced multi-frame file: its
    frames are matched to the mask's slices by their positions, so the SEG's frame ``i``
    lies on source frame ``i``. A mask where nothing was found still gives a SEG: every class
    as a segment, with empty frames, so the archive records that the structures were looked
    for and not found.

    A source with an empty Study or Series Instance UID (some de-identified exports) cannot
    be referenced as it is. Without ``notes`` no SEG is written and the reason is returned;
    with a ``notes`` list the SEG is written with new UIDs made from the source's SOP
    Instance UIDs (the same for every SEG of that series), and a note saying so is appended.

    Returns ``None`` on success, or why no SEG was written (slices that do not map
    one-to-one onto files or frames, a source without a Frame of Reference UID, sources
    highdicom cannot reference).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    labels = np.asarray(mask.array)
    frames = labels[None] if labels.ndim == 2 else labels
    found = bool(frames.any())
    if not source_files:
        return "there are no DICOM source files to reference: no DICOM SEG written"
    sources = [pydicom.dcmread(f) for f in source_files]
    first = Path(source_files[0]).name
    if len(sources) == 1 and frame_count(sources[0], source_files[0])[0] > 1:
        order = _frames_on_slices(mask, sources[0], frames.shape[0], first)
        if isinstance(order, str):
            return order
        frames = frames[order]  # SEG frame i on source frame i
    elif len(source_files) != frames.shape[0]:
        return (
            f"the volume has {frames.shape[0]} slices for {len(source_files)} files (resampled "
            "series): no DICOM SEG written"
        )
    for ds in sources:  # anonymised exports may blank these; the file meta still has them
        meta = getattr(ds, "file_meta", None)
        if not ds.get("SOPClassUID") and meta is not None:
            ds.SOPClassUID = meta.get("MediaStorageSOPClassUID", "")
        if not ds.get("SOPInstanceUID") and meta is not None:
            ds.SOPInstanceUID = meta.get("MediaStorageSOPInstanceUID", "")
        for keyword in _TYPE2_COPIED:  # required-but-may-be-empty attributes the SEG copies
            if keyword not in ds:
                setattr(ds, keyword, "")
        if "PixelSpacing" in ds and positive_pair(ds.PixelSpacing) is None:
            # a 0\0 spacing copied into the SEG makes a Pixel Measures item that highdicom
            # itself cannot read back; these copies are in memory only, the file is untouched
            del ds.PixelSpacing
        if "FrameOfReferenceUID" in ds and not ds.FrameOfReferenceUID:
            del ds.FrameOfReferenceUID  # blank: as good as missing
    for ds, name in zip(sources, source_files, strict=True):
        for keyword in ("SOPClassUID", "SOPInstanceUID"):
            if not ds.get(keyword):
                return (
                    f"{Path(name).name} has no {keyword}, which a DICOM SEG needs to reference "
                    "it: no DICOM SEG written"
                )
    why = _fill_blank_uids(sources, first, notes)
    if why:
        return why
    # segments for the classes found; all of them, with empty frames, when none was
    present = [v for v in sorted(classes) if (frames == v).any()] if found else sorted(classes)
    renumber = np.zeros(int(max(classes)) + 1, np.uint8)
    for k, v in enumerate(present, start=1):
        renumber[v] = k
    algorithm = hd.AlgorithmIdentificationSequence(
        name=model_name[:64],
        version=model_version[:64],
        family=codes.cid7162.ArtificialIntelligence,
    )
    descriptions = []
    for k, v in enumerate(present, start=1):
        category, kind = segment_codes(classes[v])
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=k,
                segment_label=classes[v][:64],
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    measures = None
    if "ImageOrientationPatient" not in sources[0] and mask.spacing_known and labels.ndim == 2:
        # projection images (CR/DX): give the SEG the pixel spacing medlabel read (from
        # ImagerPixelSpacing when PixelSpacing is missing); the slice thickness of a projection
        # is nominal. Without a known pixel size, highdicom copies the source's own (or none):
        # no made-up 1 mm goes into the archive
        dx, dy = float(mask.spacing[0]), float(mask.spacing[1])
        measures = hd.PixelMeasuresSequence(pixel_spacing=(dy, dx), slice_thickness=1.0)
    try:
        with warnings.catch_warnings():
            # the patient's name is copied from the source as it is; highdicom's doubt about a
            # one-part name ("CQ500-CT-310") is not the user's to act on
            warnings.filterwarnings(
                "ignore", message=".*intended person name", category=UserWarning
            )
            seg = _segmentation(
                hd, codes, sources, frames, renumber, descriptions, model_name, measures, found
            )
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        return _seg_refusal(exc, first)
    with atomic_output(path) as tmp:
        seg.save_as(tmp)
    return None


def _frame_group(ds: Any, frame: int, name: str) -> Any:
    """Functional group ``name`` of a frame (per-frame first, then shared), or ``None``."""
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if seq is not None and len(seq) > index and name in seq[index]:
            items = seq[index].get(name)
            if items:
                return items[0]
    return None


def _frames_on_slices(mask: MedicalImage, ds: Any, slices: int, name: str) -> list[int] | str:
    """For each frame of a multi-frame source, the mask slice lying on it (by position),
    or why the frames and slices do not match one to one."""
    n = frame_count(ds, name)[0]
    if n != slices or mask.ndim != 3:
        return (
            f"the volume has {slices} slices for the {n} frames of {name} (resampled): no "
            "DICOM SEG written"
        )
    if (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) != mask.array.shape[1:3]:
        return f"the mask's slices are not the size of the frames of {name}: no DICOM SEG written"
    matrix = mask.direction_matrix
    spots: list[int] = []
    for i in range(n):
        position = _frame_group(ds, i, "PlanePositionSequence")
        orientation = _frame_group(ds, i, "PlaneOrientationSequence")
        ipp = position.get("ImagePositionPatient") if position is not None else None
        iop = orientation.get("ImageOrientationPatient") if orientation is not None else None
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return (
                f"{name} is a multi-frame file that gives no position in the patient for each "
                "frame (no Plane Position and Plane Orientation functional groups), so a DICOM "
                "SEG cannot place its frames on the source frames: no DICOM SEG written"
            )
        iop_f = np.asarray([float(v) for v in iop])
        if not (
            np.allclose(iop_f[:3], matrix[:, 0], atol=1e-3)
            and np.allclose(iop_f[3:], matrix[:, 1], atol=1e-3)
        ):
            return f"the mask is not on the frames' grid of {name}: no DICOM SEG written"
        index = mask.world_to_index([float(v) for v in ipp])
        k = round(float(index[2]))
        if np.abs(index[:2]).max() > 0.1 or abs(index[2] - k) > 0.1 or not 0 <= k < slices:
            return (
                f"frame {i + 1} of {name} lies on no slice of the volume (resampled): no DICOM "
                "SEG written"
            )
        spots.append(k)
    if sorted(spots) != list(range(slices)):
        return f"several frames of {name} lie on one slice of the volume: no DICOM SEG written"
    return spots


def _fill_blank_uids(sources: list[Any], name: str, notes: list[str] | None) -> str | None:
    """Give sources with an empty Study or Series Instance UID new ones (in memory) when the
    caller takes ``notes``; else the reason no SEG is written."""
    from pydicom.uid import generate_uid

    blank = [
        k for k in ("StudyInstanceUID", "SeriesInstanceUID") if any(not s.get(k) for s in sources)
    ]
    if not blank:
        return None
    what = " and ".join(blank)
    source = f"{name} and {len(sources) - 1} more files" if len(sources) > 1 else name
    if notes is None:
        return (
            f"the source ({source}) has an empty {what} (a de-identified export?), which a "
            "DICOM SEG must repeat to reference it, and an archive rejects empty UIDs: no "
            "DICOM SEG written"
        )
    instances = sorted(str(s.SOPInstanceUID) for s in sources)
    made = {k: generate_uid(entropy_srcs=[f"medlabel {k}", *instances]) for k in blank}
    for ds in sources:
        for keyword, uid in made.items():
            if not ds.get(keyword):
                setattr(ds, keyword, uid)
    listed = ", ".join(f"{k} {v}" for k, v in made.items())
    notes.append(
        f"the source ({source}) has an empty {what} (a de-identified export?): the SEG uses "
        f"new ones made from the source's SOP Instance UIDs ({listed}), so an archive will "
        "not file it with its source images"
    )
    return None


def _seg_refusal(exc: Exception, name: str) -> str:
    """Why highdicom would not write the SEG, in plain words."""
    text = str(exc)
    if "frame of reference" in text.lower():
        return (
            f"a DICOM SEG needs the source's Frame of Reference UID (FrameOfReferenceUID), and "
            f"{name} has none: no DICOM SEG written"
        )
    missing = re.search(r"has no attribute '(\w+)'", text)
    if missing:
        return (
            f"{name} lacks {missing.group(1)}, which a DICOM SEG needs from its source: no DICOM "
            "SEG written"
        )
    return f"highdicom cannot reference these source files ({text}): no DICOM SEG written"


def _segmentation(
    hd: Any,
    codes: Any,
    sources: list[Any],
    frames: np.ndarray,
    renumber: np.ndarray,
    descriptions: list[Any],
    model_name: str,
    measures: Any,
    found: bool = True,
) -> Any:
    from medlabel import __version__

    modality = re.sub(r"[^A-Z0-9_ ]", "", str(sources[0].get("Modality", "") or "").upper())
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=renumber[frames.astype(np.int64)],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=9000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medlabel",
        manufacturer_model_name=model_name[:64],
        software_versions=f"medlabel {__version__}",
        device_serial_number="0",
        series_description=f"medlabel {model_name}"[:64],
        pixel_measures=measures,
        omit_empty_frames=found,  # an empty result keeps its (empty) frames
        # highdicom's default label reads the source's Modality, which some files lack
        content_label=f"{modality or 'MEDLABEL'}_SEG"[:16],
    )
