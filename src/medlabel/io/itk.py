"""NIfTI, NRRD and MetaImage (MHA/MHD) through SimpleITK, with exact geometry.

SimpleITK converts NIfTI's RAS affine to the LPS frame used everywhere in medlabel, so a file
read here has the geometry SimpleITK (and 3D Slicer and ITK-SNAP) show for it.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.arange(24, dtype=np.int16).reshape(2, 3, 4), spacing=(1, 2, 3))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vol.nii.gz"
    >>> write_itk(img, path)
    >>> back = read_itk(path)
    >>> back.spacing, bool((back.array == img.array).all())
    ((1.0, 2.0, 3.0), True)
"""

from __future__ import annotations

import contextlib
import os
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medlabel.errors import ReadError, WriteError
from medlabel.image import MedicalImage
from medlabel.io.atomic import atomic_output
from medlabel.io.formats import full_suffix

__all__ = ["itk_reason", "label_dtype", "nifti_truncation", "read_itk", "write_itk"]


def itk_reason(exc: Exception) -> str:
    """The useful sentence of an ITK exception (they carry file/line noise)."""
    text = str(exc)
    found = re.findall(r"(?:Description|ERROR):\s*(.+)", text)
    reason = found[-1] if found else text.strip().splitlines()[-1] if text.strip() else repr(exc)
    return reason.strip().rstrip(".")[:300]


def _missing_data_file(path: Path) -> str | None:
    """The data file a detached header (``.mhd``, ``.nhdr``) names but that does not exist."""
    suffix = full_suffix(path)
    if suffix not in (".mhd", ".nhdr"):
        return None
    key = re.compile(
        r"^\s*ElementDataFile\s*=\s*(.+?)\s*$"
        if suffix == ".mhd"
        else r"^\s*data ?file:\s*(.+?)\s*$",
        re.I,
    )
    try:
        lines = path.read_text(errors="replace").splitlines()[:200]
    except OSError:
        return None
    for line in lines:
        match = key.match(line)
        if match:
            name = match.group(1)
            if name.upper() == "LOCAL" or name.upper().startswith("LIST") or "%" in name:
                return None  # data inside the header, or a list/pattern of files
            return None if (path.parent / name).is_file() else name
    return None


def _decoded_length(path: Path, expected: int) -> int:
    """Uncompressed length of a gzip file (the trailer when it agrees, else by decoding)."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() >= 4:
            fh.seek(-4, os.SEEK_END)
            if int.from_bytes(fh.read(4), "little") == expected % 2**32:
                return expected
    # Decode chunk by chunk, counting every byte recovered: ``gzip`` drops the last block it
    # was decoding when the stream ends early, which undercounts a cut file (to 0 for most).
    count = 0
    decoder = zlib.decompressobj(wbits=31)
    with contextlib.suppress(OSError, zlib.error), path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            while chunk:
                count += len(decoder.decompress(chunk, 1 << 24))
                chunk = decoder.unconsumed_tail
                if decoder.eof:  # a next gzip member, if any, follows
                    chunk = decoder.unused_data.lstrip(b"\0") + chunk
                    decoder = zlib.decompressobj(wbits=31)
    return count


def nifti_truncation(path: Path, nii: Any = None) -> str | None:
    """Why a NIfTI file holds fewer voxel bytes than its header says, else ``None``.

    ITK's NIfTI reader fills the missing part of a truncated file with zeros without a word.
    ``nii`` is the file already opened with nibabel, if it was.
    """
    import nibabel as nib  # only needed here

    try:
        if nii is None:
            nii = nib.load(path)  # Nifti1Image or Nifti2Image
        voxels = int(np.prod(nii.header.get_data_shape()))
        need = int(nii.dataobj.offset) + voxels * nii.header.get_data_dtype().itemsize
    except (AttributeError, OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError):
        return None  # ITK could read it; nothing more to check
    if full_suffix(path) != ".nii.gz":
        have = path.stat().st_size
        if have < need:
            return f"file is truncated: {have} of the {need} bytes its header promises"
        return None
    have = _decoded_length(path, need)
    if have < need:
        return (
            f"file is truncated: its compressed data ends after {have} of the {need} bytes "
            "its header promises"
        )
    return None


def read_itk(
    path: str | os.PathLike[str], *, is_label: bool = False, index: int | None = None
) -> MedicalImage:
    """Read a NIfTI, NRRD or MetaImage file.

    A 4D file (a time series, diffusion directions, echoes) holds several volumes: ``index``
    picks one, on the grid of the first three axes; a 4D file of one volume needs none.

    Raises:
        ReadError: the file is missing, truncated or not in the format its extension says, or
            a 4D file of several volumes without a valid ``index``.
    """
    p = Path(path)
    if not p.is_file():
        raise ReadError(p, "no such file")
    missing = _missing_data_file(p)
    if missing:
        raise ReadError(p, f"its voxel data file {missing} is missing (a header without its data)")
    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise ReadError(p, f"cannot read image ({itk_reason(exc)})") from exc
    if full_suffix(p) in (".nii", ".nii.gz"):
        missing = nifti_truncation(p)
        if missing:
            raise ReadError(p, missing)
    meta: dict[str, Any] = {"format": full_suffix(p).lstrip(".")}
    if image.GetDimension() == 4:
        image, meta["volume"], meta["volumes"] = _one_volume(p, image, index)
    for key in image.GetMetaDataKeys():
        if key in ("descrip", "intent_name", "modality", "Modality"):
            meta[key] = image.GetMetaData(key)
    modality = meta.get("modality") or _metaio_modality(meta.get("Modality"))
    return MedicalImage.from_sitk(
        image, modality=modality or None, metadata=meta, is_label=is_label
    )


#: MetaImage's own ``Modality`` values as DICOM codes. ITK reports ``MET_MOD_UNKNOWN`` for
#: every MetaImage whose header does not say (SimpleITK writes no modality), so it and
#: ``MET_MOD_OTHER`` say nothing: such images are untagged.
_METAIO_MODALITIES: dict[str, str | None] = {
    "MET_MOD_CT": "CT",
    "MET_MOD_MR": "MR",
    "MET_MOD_NM": "NM",
    "MET_MOD_US": "US",
    "MET_MOD_OTHER": None,
    "MET_MOD_UNKNOWN": None,
}


def _metaio_modality(value: str | None) -> str | None:
    """The DICOM modality code of a MetaImage ``Modality`` value (``None``: not said).

    Example:
        >>> _metaio_modality("MET_MOD_CT"), _metaio_modality("MET_MOD_UNKNOWN")
        ('CT', None)
    """
    text = (value or "").strip()
    return _METAIO_MODALITIES.get(text.upper(), text) or None


def _one_volume(path: Path, image: sitk.Image, index: int | None) -> tuple[sitk.Image, int, int]:
    """Volume ``index`` of a 4D image, its index and the number of volumes."""
    *size, count = image.GetSize()
    shape = "x".join(str(n) for n in size)
    if index is None and count > 1:
        raise ReadError(
            path,
            f"a 4D image of {count} volumes of {shape}: choose one with --index 0..{count - 1} "
            "(medlabel works on 2D and 3D images)",
        )
    chosen = 0 if index is None else index
    if not 0 <= chosen < count:
        raise ReadError(path, f"volume index {chosen} is outside 0..{count - 1}")
    extract = sitk.ExtractImageFilter()
    extract.SetSize([*size, 0])
    extract.SetIndex([0, 0, 0, chosen])
    extract.SetDirectionCollapseToStrategy(sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX)
    return extract.Execute(image), chosen, count


def label_dtype(array: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """Cast a label map to the smallest unsigned (or signed) integer type holding its values.

    Raises:
        WriteError: values are not whole numbers.
    """
    if array.dtype.kind in "iu":
        return array
    if not np.all(np.isfinite(array)) or not np.all(np.mod(array, 1) == 0):
        raise WriteError(path, f"label map has non-integer values (dtype {array.dtype})")
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    for t in (np.uint8, np.uint16, np.int16, np.int32):
        info = np.iinfo(t)
        if info.min <= lo and hi <= info.max:
            return array.astype(t)
    return array.astype(np.int64)


def write_itk(image: MedicalImage, path: str | os.PathLike[str], *, compress: bool = True) -> None:
    """Write NIfTI/NRRD/MHA atomically; label maps keep an integer type.

    Raises:
        WriteError: the image cannot be stored in that format.
    """
    p = Path(path)
    if image.is_label:
        image = image.with_array(label_dtype(image.array, p))
    if image.array.dtype in (np.int64, np.uint64) and full_suffix(p) in (".nii", ".nii.gz"):
        lo, hi = int(image.array.min()), int(image.array.max())
        if np.iinfo(np.int32).min <= lo and hi <= np.iinfo(np.int32).max:
            image = image.with_array(image.array.astype(np.int32))
    sitk_image = image.to_sitk()
    if image.modality and full_suffix(p) in (".nrrd", ".mha", ".mhd"):
        sitk_image.SetMetaData("modality", image.modality)
    try:
        with atomic_output(p) as tmp:
            if full_suffix(p) == ".mhd":
                # An .mhd header names its .raw data file: write both under the final names.
                raw = tmp.with_suffix(".zraw" if compress else ".raw")
                try:
                    sitk.WriteImage(sitk_image, str(tmp), compress)
                    text = tmp.read_text().replace(raw.name, p.with_suffix(raw.suffix).name)
                    os.replace(raw, p.with_suffix(raw.suffix))
                    tmp.write_text(text)
                finally:
                    raw.unlink(missing_ok=True)  # left behind only when writing failed
            else:
                sitk.WriteImage(sitk_image, str(tmp), compress)
    except RuntimeError as exc:
        raise WriteError(p, f"cannot write image ({itk_reason(exc)})") from exc
