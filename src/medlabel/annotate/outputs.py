"""Files an annotation job writes for one mask: NIfTI, DICOM SEG, PNG overlay, COCO.

Every writer is atomic (a temporary file renamed into place), so a killed job never leaves a
half-written file under a final name.

* **NIfTI** (``.nii.gz``): the label map on the input grid (same spacing, origin and
  direction), segment values as in the model's classes.
* **DICOM SEG** (highdicom), only for DICOM inputs: references the source series (study,
  series and every SOP instance), one segment per class with its label, and lines up frame
  by frame with the source slices. Resampled series (uneven slices) and empty masks get no
  SEG; the reason is returned.
* **PNG overlay**: the image with the mask in colour (slices holding the mask for volumes).
* **COCO** (2D masks): polygons, bounding boxes and areas per class, gathered into one
  ``coco.json`` at the end of the job by :func:`coco_document`.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> m = np.zeros((20, 30), np.uint8); m[5:10, 5:15] = 1
    >>> anns = coco_annotations(MedicalImage(m, is_label=True), {1: "lung"})
    >>> anns[0]["category"], anns[0]["bbox"], anns[0]["area"]
    ('lung', [5.0, 5.0, 10.0, 5.0], 50.0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.io.atomic import atomic_output
from medlabel.io.dicom.headers import positive_pair

__all__ = [
    "FORMATS",
    "coco_annotations",
    "coco_document",
    "output_path",
    "write_dicom_seg",
    "write_json",
    "write_nifti",
    "write_overlay",
]

FORMATS = ("nifti", "dicom-seg", "png", "coco")

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


def write_json(data: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str))


def write_overlay(
    image: MedicalImage, mask: MedicalImage, path: str | os.PathLike[str], window: Any = None
) -> None:
    """PNG of ``image`` with ``mask`` in colour (written atomically)."""
    from medlabel.visualize.preview import render_preview

    render_preview(image, path, mask=mask, window=window, slices=6, tile=192)


def _property_type(name: str) -> Any:
    """A SNOMED CT code for well-known structure names, else a private code with the name."""
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    lowered = name.lower()
    known = {
        "lung": "Lung",
        "heart": "Heart",
        "bone": "Bone",
        "hippocampus": "Hippocampus",
        "brain": "Brain",
        "liver": "Liver",
    }
    for word, attr in known.items():
        if word in lowered:
            try:
                return getattr(codes.SCT, attr)
            except AttributeError:
                break
    return Code(value=name[:16] or "structure", scheme_designator="99MEDLABEL", meaning=name)


def write_dicom_seg(
    mask: MedicalImage,
    classes: dict[int, str],
    source_files: Sequence[str],
    path: str | os.PathLike[str],
    *,
    model_name: str,
    model_version: str,
) -> str | None:
    """Write a DICOM Segmentation of ``mask`` referencing ``source_files``.

    ``source_files`` are the series' files in the order of the mask's slices (as the reader
    records them in ``metadata["source_files"]``). A mask where nothing was found still gives
    a SEG: every class as a segment, with empty frames, so the archive records that the
    structures were looked for and not found. Returns ``None`` on success, or why no SEG was
    written (slices that do not map one-to-one onto files, sources highdicom cannot
    reference).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    labels = np.asarray(mask.array)
    frames = labels[None] if labels.ndim == 2 else labels
    found = bool(frames.any())
    if len(source_files) != frames.shape[0]:
        return (
            f"the volume has {frames.shape[0]} slices for {len(source_files)} files (resampled "
            "series): no DICOM SEG written"
        )
    sources = [pydicom.dcmread(f) for f in source_files]
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
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=classes[v][:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=_property_type(classes[v]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for k, v in enumerate(present, start=1)
    ]
    measures = None
    if "ImageOrientationPatient" not in sources[0] and mask.spacing_known:
        # projection images (CR/DX): give the SEG the pixel spacing medlabel read (from
        # ImagerPixelSpacing when PixelSpacing is missing); the slice thickness of a projection
        # is nominal. Without a known pixel size, highdicom copies the source's own (or none):
        # no made-up 1 mm goes into the archive
        dx, dy = float(mask.spacing[0]), float(mask.spacing[1])
        measures = hd.PixelMeasuresSequence(pixel_spacing=(dy, dx), slice_thickness=1.0)
    try:
        seg = _segmentation(
            hd, codes, sources, frames, renumber, descriptions, model_name, measures, found
        )
    except (ValueError, AttributeError, KeyError) as exc:
        return f"highdicom cannot reference these source files ({exc}): no DICOM SEG written"
    with atomic_output(path) as tmp:
        seg.save_as(tmp)
    return None


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
    )


def write_nifti(mask: MedicalImage, path: str | os.PathLike[str]) -> None:
    """The label map as NIfTI on the input grid (atomic)."""
    write_image(mask, path)


def coco_annotations(mask: MedicalImage, classes: dict[int, str]) -> list[dict[str, Any]]:
    """COCO-style annotations of a 2D label map: one per connected region and class, with
    polygon(s) in pixel coordinates, ``bbox`` (x, y, w, h) and ``area`` in pixels."""
    from scipy import ndimage
    from skimage import measure

    labels = np.asarray(mask.array)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        return []
    out: list[dict[str, Any]] = []
    for value, name in sorted(classes.items()):
        regions, n = ndimage.label(labels == value)
        for k in range(1, n + 1):
            region = regions == k
            ys, xs = np.nonzero(region)
            padded = np.pad(region, 1).astype(np.uint8)
            polygons = []
            for contour in measure.find_contours(padded, 0.5):
                if len(contour) < 3:
                    continue
                poly = np.fliplr(contour - 1).ravel()  # (x, y) pairs
                polygons.append([round(float(v), 2) for v in poly])
            out.append(
                {
                    "category": name,
                    "segmentation": polygons,
                    "bbox": [
                        float(xs.min()),
                        float(ys.min()),
                        float(xs.max() - xs.min() + 1),
                        float(ys.max() - ys.min() + 1),
                    ],
                    "area": float(region.sum()),
                    "iscrowd": 0,
                }
            )
    return out


def coco_document(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One COCO document from per-item entries ``{"item", "file_name", "width", "height",
    "model", "annotations"}``; categories are ``model/class``."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories: dict[str, int] = {}
    for image_id, entry in enumerate(entries, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": entry["file_name"],
                "width": entry["width"],
                "height": entry["height"],
                "medlabel_item": entry["item"],
            }
        )
        for ann in entry["annotations"]:
            key = f"{entry['model']}/{ann['category']}"
            if key not in categories:
                categories[key] = len(categories) + 1
            annotations.append(
                {
                    **{k: v for k, v in ann.items() if k != "category"},
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": categories[key],
                }
            )
    return {
        "info": {"description": "medlabel automatic annotations"},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": k.split("/", 1)[1], "supercategory": k.split("/", 1)[0]}
            for k, i in categories.items()
        ],
    }


def output_path(out: Path, item_id: str, model: str, suffix: str) -> Path:
    """Where an item's output for a model goes: ``out/masks/<item>/<model><suffix>``."""
    return out / "masks" / item_id / f"{model}{suffix}"
