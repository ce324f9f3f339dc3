"""Files an annotation job writes for one mask: NIfTI, DICOM SEG, PNG overlay, COCO.

Every writer is atomic (a temporary file renamed into place), so a killed job never leaves a
half-written file under a final name.

* **NIfTI** (``.nii.gz``): the label map on the input grid (same spacing, origin and
  direction), segment values as in the model's classes.
* **DICOM SEG** (highdicom), only for DICOM inputs: :mod:`medlabel.annotate.dicom_seg`.
* **PNG overlay**: the image with the mask in colour (slices holding the mask for volumes).
* **COCO** (2D masks): :mod:`medlabel.annotate.coco`, gathered into one ``coco.json`` at the
  end of the job.

Example:
    >>> from pathlib import Path
    >>> output_path(Path("job"), "chest-1a2b", "cxr-lungs", ".nii.gz").as_posix()
    'job/masks/chest-1a2b/cxr-lungs.nii.gz'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medlabel.annotate.coco import coco_annotations, coco_document, rle_decode, rle_encode
from medlabel.annotate.dicom_seg import segment_codes, write_dicom_seg
from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.io.atomic import atomic_output

__all__ = [
    "FORMATS",
    "coco_annotations",
    "coco_document",
    "output_path",
    "rle_decode",
    "rle_encode",
    "segment_codes",
    "write_dicom_seg",
    "write_json",
    "write_nifti",
    "write_overlay",
]

FORMATS = ("nifti", "dicom-seg", "png", "coco")


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


def write_nifti(mask: MedicalImage, path: str | os.PathLike[str]) -> None:
    """The label map as NIfTI on the input grid (atomic)."""
    write_image(mask, path)


def output_path(out: Path, item_id: str, model: str, suffix: str) -> Path:
    """Where an item's output for a model goes: ``out/masks/<item>/<model><suffix>``."""
    return out / "masks" / item_id / f"{model}{suffix}"
