"""Whether a segmentation case can be used, read only as far as needed (2D images whole; NIfTI,
NRRD and MetaImage volumes by their headers, nothing decoded), and the record of the cases
skipped as unusable (file and reason) that data sets, bundles and reports carry.

Example:
    >>> rec = skipped_record([{"case": "a", "path": "a.png", "reason": "truncated"}])
    >>> skipped_note(rec)
    '; 1 case(s) were skipped as unusable (a.png: truncated)'
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from medlabel.errors import MedlabelError, ReadError
from medlabel.image import MedicalImage
from medlabel.io import align_mask, read_image, read_label
from medlabel.io.formats import detect_format
from medlabel.io.itk import itk_reason

if TYPE_CHECKING:
    from medlabel.segment.dataset import SegmentationCase

__all__ = [
    "MAX_SKIPPED_LISTED",
    "check_case",
    "header_image",
    "skip_case",
    "skipped_note",
    "skipped_record",
]

log = logging.getLogger(__name__)

#: How many skipped cases ``source["skipped"]`` lists by name (its ``count`` has them all).
MAX_SKIPPED_LISTED = 50

#: Formats whose grid SimpleITK reads from the header alone (no voxels decoded).
_HEADER_FORMATS = ("nifti", "nrrd", "metaimage")


def skipped_record(
    entries: Sequence[dict[str, str]], earlier: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"count": N, "cases": [...]}`` for skipped cases, listing at most
    :data:`MAX_SKIPPED_LISTED`; ``earlier``: a record to add to.

    Example:
        >>> rec = skipped_record([{"case": "a", "path": "a.png", "reason": "truncated"}])
        >>> skipped_record([{"case": "b", "path": "b.png", "reason": "off grid"}], rec)["count"]
        2
    """
    earlier = earlier or {"count": 0, "cases": []}
    cases = [*earlier.get("cases", []), *entries][:MAX_SKIPPED_LISTED]
    return {"count": int(earlier.get("count", 0)) + len(entries), "cases": cases}


def skipped_note(record: dict[str, Any] | None) -> str:
    """``""``, or a clause saying how many cases a record skipped and why (the first three)."""
    if not record or not record.get("count"):
        return ""
    first = "; ".join(f"{e['path']}: {e['reason']}" for e in record["cases"][:3])
    more = ", ..." if record["count"] > 3 else ""
    return f"; {record['count']} case(s) were skipped as unusable ({first}{more})"


def skip_case(case: SegmentationCase, err: MedlabelError) -> dict[str, str]:
    """Log the warning for a skipped case and return its record."""
    log.warning("%s; case %s skipped", err, case.id)
    return {"case": case.id, "path": str(err.path or case.image), "reason": err.reason}


def header_image(path: Path) -> MedicalImage:
    """An image with the grid that ``path``'s header declares and no voxels (nothing decoded).

    Raises:
        ReadError: the header cannot be read, or the file holds several volumes.
    """
    if path.is_file() and path.stat().st_size == 0:
        raise ReadError(path, "empty file (0 bytes)")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ReadError(path, f"cannot read image ({itk_reason(exc)})") from exc
    size, dim = reader.GetSize(), reader.GetDimension()
    direction = np.asarray(reader.GetDirection()).reshape(dim, dim)
    if dim == 4:
        if size[3] > 1:
            raise ReadError(
                path, f"a 4D image of {size[3]} volumes: a segmentation case is one 2D or 3D image"
            )
        dim, direction = 3, direction[:3, :3]
    if dim not in (2, 3):
        raise ReadError(path, f"a {dim}D image: a segmentation case is one 2D or 3D image")
    return MedicalImage(
        np.broadcast_to(np.zeros((), np.uint8), tuple(reversed(size[:dim]))),
        spacing=reader.GetSpacing()[:dim],
        origin=reader.GetOrigin()[:dim],
        direction=tuple(direction.ravel().tolist()),
        metadata={"components": reader.GetNumberOfComponents()},
    )


def check_case(case: SegmentationCase) -> set[int] | None:
    """Read ``case`` as far as needed to know it can be used; its mask's values, or ``None``
    when there is no mask or only headers were read (NIfTI, NRRD, MetaImage).

    Raises:
        MedlabelError: naming the file: unreadable, or the mask is off the image's grid.
    """
    files = [f for f in (case.image, case.label) if f is not None]
    if all(f.is_file() and detect_format(f) in _HEADER_FORMATS for f in files):
        image = header_image(case.image)
        if case.label is not None:
            mask = header_image(case.label)
            if mask.metadata["components"] > 1:
                raise ReadError(
                    case.label,
                    f"a label map has one channel, this file has {mask.metadata['components']}",
                )
            align_mask(image, mask, case.label)  # as read_label(reference=) will
        return None
    image = read_image(case.image)
    if case.label is None:
        return None
    return set(np.unique(read_label(case.label, reference=image).array).tolist())
