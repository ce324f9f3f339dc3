"""Fast NIfTI reading through nibabel, with SimpleITK's geometry.

nibabel decodes small compressed volumes several times faster than SimpleITK. This reader uses
it when the file's geometry is unambiguous (qform and sform absent, equal, or only one of them
set without shear; no intensity scaling; 3D scalar data) and converts nibabel's RAS affine to
the LPS geometry SimpleITK reports. Anything else (disagreeing qform/sform, scaled data,
2D, vector or 4D files) goes through SimpleITK itself, so the result is always SimpleITK's,
except that NaN and infinite values of floating-point files are kept (SimpleITK reads NaN
as 0, which would hide them from the checks that refuse such images).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.image import MedicalImage
    >>> from medlabel.io.itk import write_itk
    >>> img = MedicalImage(np.arange(60, dtype=np.int16).reshape(3, 4, 5), spacing=(1, 2, 3))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vol.nii.gz"
    >>> write_itk(img, path)
    >>> back = read_nifti(path)
    >>> back.spacing, back.origin, bool((back.array == img.array).all())
    ((1.0, 2.0, 3.0), (0.0, 0.0, 0.0), True)
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from medlabel.errors import ReadError
from medlabel.image import MedicalImage
from medlabel.io.formats import full_suffix
from medlabel.io.itk import nifti_truncation, read_itk

__all__ = ["read_nifti"]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_SCALAR_KINDS = "iuf"


def _affine(header: Any) -> np.ndarray | None:
    """The one affine ITK would use, or ``None`` when its choice is not obvious."""
    q_code, s_code = int(header["qform_code"]), int(header["sform_code"])
    qform = header.get_qform() if q_code > 0 else None
    sform = header.get_sform() if s_code > 0 else None
    if qform is not None and sform is not None:
        return qform if np.allclose(qform, sform, rtol=0, atol=1e-5) else None
    if qform is not None:
        return qform
    if sform is not None:
        cols = sform[:3, :3]
        gram = cols.T @ cols
        if np.allclose(gram, np.diag(np.diag(gram)), rtol=0, atol=1e-6 * gram.max()):
            return sform
    return None


def _with_non_finite(image: MedicalImage, nii: Any, dtype: np.dtype[Any]) -> MedicalImage:
    """``image`` (read by SimpleITK, whose NIfTI reader turns NaN into 0) with the file's NaN
    and infinite values put back, so they are refused downstream instead of read as 0."""
    if dtype.kind != "f" or image.is_label:
        return image
    try:
        data = np.asanyarray(nii.dataobj)
    except (OSError, ValueError, EOFError, zlib.error):
        return image
    bad = ~np.isfinite(data)
    if not bad.any() or bad.T.shape != image.array.shape:
        return image
    array = np.array(image.array, dtype=np.result_type(image.array.dtype, np.float32))
    array[bad.T] = data.T[bad.T]
    return image.with_array(array)


def read_nifti(
    path: str | os.PathLike[str], *, is_label: bool = False, index: int | None = None
) -> MedicalImage:
    """Read a NIfTI-1/2 file (``.nii``, ``.nii.gz``) with SimpleITK's geometry; ``index``
    picks a volume of a 4D file (see :func:`~medlabel.io.itk.read_itk`).

    Raises:
        ReadError: the file is missing, corrupt or truncated, or 4D without a volume index.
    """
    p = Path(path)
    if not p.is_file():
        raise ReadError(p, "no such file")
    try:
        nii: Any = nib.load(p)
        header = nii.header
        shape = header.get_data_shape()
        dtype = header.get_data_dtype()
        # nibabel moves scl_slope/scl_inter from the header into the data proxy
        slope, inter = float(nii.dataobj.slope), float(nii.dataobj.inter)
    except (
        OSError,
        ValueError,
        EOFError,
        AttributeError,
        zlib.error,
        nib.filebasedimages.ImageFileError,
    ):
        return read_itk(p, is_label=is_label, index=index)  # SimpleITK's error, or it reads it
    if len(shape) != 3 or int(header["dim"][0]) != 3:
        # 2D, 4D, vector: SimpleITK's rules
        return _with_non_finite(read_itk(p, is_label=is_label, index=index), nii, dtype)
    affine = _affine(header)
    if affine is not None and not np.allclose(
        np.linalg.norm(affine[:3, :3], axis=0), header.get_zooms()[:3], rtol=1e-5
    ):
        affine = None  # pixdim disagrees with the affine: leave the reconciling to ITK
    scaled = slope != 1.0 or inter != 0.0
    if affine is None or scaled or dtype.kind not in _SCALAR_KINDS or dtype.names is not None:
        return _with_non_finite(read_itk(p, is_label=is_label), nii, dtype)
    reason = nifti_truncation(p, nii)
    if reason:
        raise ReadError(p, reason)
    try:
        data = np.asarray(nii.dataobj)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise ReadError(p, f"voxel data cannot be read ({exc})") from exc
    array = np.ascontiguousarray(data.T, dtype=dtype.newbyteorder("="))
    lps = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.asarray(header.get_zooms()[:3], dtype=float)  # ITK's spacing is pixdim
    meta = {"format": full_suffix(p).lstrip(".")}
    descrip = header["descrip"].item().decode("latin-1").strip("\x00 ")
    if descrip:
        meta["descrip"] = descrip
    return MedicalImage(
        array,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(float(v) for v in _RAS_TO_LPS @ affine[:3, 3]),
        direction=tuple(float(v) for v in (lps / np.linalg.norm(lps, axis=0)).ravel()),
        metadata=meta,
        is_label=is_label,
    )
