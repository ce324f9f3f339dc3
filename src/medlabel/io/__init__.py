"""Reading and writing medical images with exact geometry.

One entry point each way: :func:`read_image` takes a DICOM file, a DICOM series folder, a
DICOMDIR, NIfTI, NRRD, MHA/MHD, PNG/JPEG/TIFF/BMP or a MedMNIST ``.npz``; :func:`write_image`
picks the format from the extension (NIfTI, NRRD, MHA/MHD, PNG, TIFF). Outputs are written
atomically; inputs are opened read-only.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "mask.nrrd"
    >>> write_image(MedicalImage(np.ones((2, 4, 4), np.uint8), is_label=True), out)
    >>> read_image(out).dtype.name
    'uint8'
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from medlabel.errors import GeometryMismatchError, ReadError, SeriesError, UnsupportedFormatError
from medlabel.errors import WriteError as WriteError
from medlabel.image import MedicalImage, on_lattice_of, same_grid
from medlabel.io.dicom import read_dicom, scan_series
from medlabel.io.dicom.geometry import IrregularPolicy, TiltPolicy
from medlabel.io.formats import READ_FORMATS, WRITE_FORMATS, detect_format, full_suffix
from medlabel.io.itk import label_dtype, read_itk, write_itk
from medlabel.io.medmnist import MedMNISTArchive
from medlabel.io.nifti import read_nifti
from medlabel.io.raster import read_raster, write_raster

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "MedMNISTArchive",
    "align_mask",
    "check_same_grid",
    "read_image",
    "read_label",
    "scan_series",
    "write_image",
]

log = logging.getLogger(__name__)


def read_image(
    path: str | os.PathLike[str],
    *,
    series: str | int | None = None,
    invert_monochrome1: bool = True,
    irregular: IrregularPolicy = "error",
    tilt: TiltPolicy = "error",
    split: str = "test",
    index: int | None = None,
    is_label: bool = False,
) -> MedicalImage:
    """Read any supported image.

    Args:
        path: a file, a DICOM series folder (searched recursively) or a DICOMDIR.
        series: DICOM: which series (index or UID) when a folder holds several.
        invert_monochrome1: DICOM: show MONOCHROME1 radiographs with high = bright.
        irregular: DICOM: ``error`` / ``warn`` / ``resample`` on missing or uneven slices.
        tilt: DICOM: ``error`` / ``resample`` on gantry tilt.
        split: MedMNIST: the split to read from.
        index: MedMNIST: the image index (required for ``.npz``); 4D NIfTI, NRRD or
            MetaImage files: the volume (required when they hold several).
        is_label: mark the result as a label map (NIfTI/NRRD/MHA/PNG).

    Raises:
        ReadError, SeriesError, UnsupportedFormatError: one line naming the path and reason.
    """
    p = Path(path)
    if not p.exists():
        raise ReadError(p, "no such file or folder")
    if p.is_dir():
        scan = scan_series(p)
        if not scan.series and not scan.errors:
            others = sorted(
                f.name
                for f in p.iterdir()
                if f.is_file() and detect_format(f) not in (None, "dicom")
            )
            hint = (
                f"; it holds {len(others)} other image file(s) such as {others[0]}: give one file"
                if others
                else ""
            )
            raise SeriesError(p, f"folder holds no DICOM image series{hint}")
        return read_dicom(
            p, series=series, invert_monochrome1=invert_monochrome1, irregular=irregular, tilt=tilt
        )
    if p.stat().st_size == 0:
        raise ReadError(p, "empty file (0 bytes)")
    fmt = detect_format(p)
    if fmt is None:
        raise UnsupportedFormatError(
            p,
            f"unknown file type {full_suffix(p) or '(no extension)'}; medlabel reads DICOM, "
            f"{', '.join(e for e in READ_FORMATS if e not in ('.dcm', '.dicom', '.ima'))}",
        )
    if fmt == "dicom":
        image = read_dicom(
            p, series=series, invert_monochrome1=invert_monochrome1, irregular=irregular, tilt=tilt
        )
    elif fmt == "raster":
        image = read_raster(p)
    elif fmt == "medmnist":
        archive = MedMNISTArchive(p)
        if index is None:
            raise ReadError(p, "a MedMNIST archive holds many images: give an index (CLI: --index)")
        image = archive.image(split, index)
    elif fmt == "nifti":
        image = read_nifti(p, index=index)
    else:
        image = read_itk(p, index=index)
    _warn_unused(p, fmt, image, series, index)
    return image.with_array(image.array, is_label=True) if is_label else image


def _warn_unused(
    p: Path, fmt: str, image: MedicalImage, series: str | int | None, index: int | None
) -> None:
    """Say when a reading option does not apply to this file (it is ignored, not an error:
    a script may pass the same options for every file)."""
    if series is not None and not (fmt == "dicom" and p.name.upper() == "DICOMDIR"):
        log.warning(
            "%s: series %s ignored: it picks one series of a folder or a DICOMDIR, and this is "
            "one file",
            p,
            series,
        )
    if index is not None and fmt != "medmnist" and "volumes" not in image.metadata:
        log.warning(
            "%s: index %s ignored: it picks an image of a MedMNIST archive or a volume of a 4D "
            "file, and this file holds one image",
            p,
            index,
        )


def read_label(path: str | os.PathLike[str], reference: MedicalImage | None = None) -> MedicalImage:
    """Read a label map (mask); with ``reference``, insist that it lies on the same grid.

    A mask holding ``reference``'s voxel centres with its axes stored permuted or flipped is
    reordered onto ``reference``'s grid exactly (:func:`align_mask`).

    Raises:
        ReadError: the mask has a non-integer type or colour channels.
        GeometryMismatchError: the mask lies on another lattice than ``reference``.
    """
    mask = read_image(path, is_label=True)
    if mask.channels:
        raise ReadError(path, f"a label map has one channel, this file has {mask.channels}")
    if mask.array.dtype.kind == "f":
        # label maps saved as floats (common in NIfTI) are fine when every value is whole
        values = mask.array
        if not (np.all(np.isfinite(values)) and np.all(values == np.round(values))):
            raise ReadError(
                path, f"a label map holds whole numbers; this {values.dtype} file does not"
            )
        mask = mask.with_array(label_dtype(values, path))
    elif mask.array.dtype.kind not in "iub":
        raise ReadError(path, f"a label map holds integers, this file holds {mask.array.dtype}")
    if mask.array.dtype.kind == "i" and mask.array.size and int(mask.array.min()) < 0:
        log.warning(
            "%s: this label map holds negative values (down to %d), where labels are class "
            "numbers from 0: is it an image rather than a mask?",
            path,
            int(mask.array.min()),
        )
    if reference is not None:
        return align_mask(reference, mask, path)
    return mask


def align_mask(
    image: MedicalImage, mask: MedicalImage, path: str | os.PathLike[str] | None = None
) -> MedicalImage:
    """``mask`` on ``image``'s grid: itself when the grids match, its voxels reordered
    exactly (no interpolation, :func:`medlabel.image.on_lattice_of`) when it holds the same
    voxel centres stored with axes permuted or flipped (a TotalSegmentator mask saved as LAS
    for an LPS DICOM series).

    Raises:
        GeometryMismatchError: the lattices differ; the message names what differs.

    Example:
        >>> import numpy as np
        >>> ct = MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 2))
        >>> las = MedicalImage(np.arange(24).reshape(2, 3, 4), spacing=(1, 1, 2),
        ...                    origin=(0, 2, 0), direction=(1, 0, 0, 0, -1, 0, 0, 0, 1))
        >>> align_mask(ct, las).array[0, :, 0].tolist()
        [8, 4, 0]
    """
    if same_grid(image, mask):
        return mask
    moved = on_lattice_of(mask, image)
    if moved is None:
        check_same_grid(image, mask, path)  # raises, naming what differs
        return mask
    return moved


def check_same_grid(
    image: MedicalImage, mask: MedicalImage, path: str | os.PathLike[str] | None = None
) -> None:
    """Raise :class:`GeometryMismatchError` naming what differs when two grids do not match."""
    if same_grid(image, mask):
        return
    diffs = []
    for name in ("size", "spacing", "origin", "direction"):
        a, b = getattr(image, name), getattr(mask, name)
        if len(a) != len(b) or any(abs(x - y) > 1e-4 for x, y in zip(a, b, strict=False)):
            fa = ", ".join(f"{x:g}" for x in a)
            fb = ", ".join(f"{x:g}" for x in b)
            diffs.append(f"{name} ({fb}) vs image ({fa})")
    raise GeometryMismatchError(path, "mask does not lie on the image grid: " + "; ".join(diffs))


def write_image(image: MedicalImage, path: str | os.PathLike[str]) -> None:
    """Write an image; the format follows the extension. Atomic: temp file, then rename.

    Raises:
        WriteError: unknown extension or content the format cannot hold.
    """
    p = Path(path)
    ext = full_suffix(p)
    if ext in (".png", ".tif", ".tiff"):
        write_raster(image, p)
    elif ext in (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd"):
        write_itk(image, p)
    else:
        raise WriteError(
            p, f"cannot write {ext or '(no extension)'}; choose one of {', '.join(WRITE_FORMATS)}"
        )
