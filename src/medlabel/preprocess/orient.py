"""Anatomical orientation codes and reorientation (SimpleITK ``DICOMOrientImageFilter``).

Codes follow the DICOM/ITK convention: letter ``i`` names the patient direction the ``i``-th
index axis (x, y, z) points *towards*. An identity direction is ``"LPS"``: x towards the
patient's left, y towards posterior, z towards superior (NIfTI tools would call it "RAI").
Reorienting only permutes and flips the array; every voxel keeps its world position.

2D images use two-letter codes from the in-plane axes (identity is ``"LP"``); a three-letter
request such as ``"LPS"`` for a 2D image uses its first two letters.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 1))
    >>> orientation_code(img)
    'LPS'
    >>> ras = reorient(img, "RAS")
    >>> orientation_code(ras), ras.direction
    ('RAS', (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import from_sitk_like, map_channel_images

__all__ = ["axes_in_orientation", "orientation_code", "reorient"]

_PAIRS = ("LR", "PA", "SI")


def _embed_3d(image: MedicalImage) -> MedicalImage:
    """A 2D image as a one-slice 3D image whose z axis points superior."""
    direction = np.eye(3)
    direction[:2, :2] = image.direction_matrix
    return image.with_array(
        image.array[None, ...],
        spacing=(*image.spacing, 1.0),
        origin=(*image.origin, 0.0),
        direction=tuple(direction.ravel()),
    )


def _squeeze_2d(image: MedicalImage, like: MedicalImage) -> MedicalImage:
    d = image.direction_matrix[:2, :2]
    return like.with_array(
        image.array[0],
        spacing=image.spacing[:2],
        origin=image.origin[:2],
        direction=tuple(d.ravel()),
    )


def orientation_code(image: MedicalImage) -> str:
    """Closest anatomical orientation code of an image's direction cosines.

    Args:
        image: a 2D or 3D image.

    Returns:
        Three letters for 3D (e.g. ``"LPS"``, ``"RAS"``), two for 2D (e.g. ``"LP"``). For
        oblique directions, the code of the nearest axis-aligned orientation.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> flipped = MedicalImage(np.zeros((3, 3)), direction=(-1, 0, 0, 1))
        >>> orientation_code(flipped)
        'RP'
    """
    direction = np.eye(3)
    direction[: image.ndim, : image.ndim] = image.direction_matrix
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        direction.ravel().tolist()
    )
    return str(code)[: image.ndim]


def axes_in_orientation(image: MedicalImage, code: str | None) -> tuple[int, ...]:
    """Which stored (ITK-order) axis of a 3D ``image`` becomes each axis of
    ``reorient(image, code)``, found from the codes alone (no voxels are moved); the stored
    order for ``code=None`` or a 2D image.

    Example:
        >>> img = MedicalImage(np.zeros((2, 3, 4)), direction=(0, 0, 1, 1, 0, 0, 0, 1, 0))
        >>> orientation_code(img), axes_in_orientation(img, "LPS")
        ('PSL', (2, 0, 1))
    """
    if code is None or image.ndim != 3:
        return tuple(range(image.ndim))
    stored = orientation_code(image)
    pair = {ch: k for k, chars in enumerate(_PAIRS) for ch in chars}
    return tuple(next(i for i, ch in enumerate(stored) if pair[ch] == pair[t]) for t in code)


def _validate(code: str, ndim: int) -> str:
    letters = str(code).strip().upper()
    if ndim == 2 and len(letters) == 3:
        letters = letters[:2]
    pairs = _PAIRS[:ndim] if ndim == 2 else _PAIRS
    ok = len(letters) == ndim and all(sum(ch in pair for ch in letters) == 1 for pair in pairs)
    if not ok:
        example = "'LP' or 'RA'" if ndim == 2 else "'LPS' or 'RAS'"
        raise PreprocessError(
            None,
            f"invalid {ndim}D orientation code {code!r}: use one letter per axis from "
            f"{', '.join(pairs)} (e.g. {example})",
        )
    return letters


def reorient(image: MedicalImage, orientation: str = "LPS") -> MedicalImage:
    """Permute and flip axes so the image has the given orientation code.

    Args:
        image: 2D or 3D image (any number of channels; labels allowed).
        orientation: target code, e.g. ``"LPS"`` (ITK/DICOM default) or ``"RAS"``.

    Returns:
        The same voxels, reordered, with direction and origin updated so every voxel keeps
        its world position; dtype, modality, metadata and label flag are kept.

    Raises:
        PreprocessError: invalid orientation code (or an out-of-plane code for 2D).

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.array([[1, 2, 3]]), spacing=(2, 1), is_label=True)
        >>> out = reorient(img, "RP")
        >>> out.array.tolist(), out.origin
        ([[3, 2, 1]], (4.0, 0.0))
    """
    code = _validate(orientation, image.ndim)
    if image.ndim == 2:
        out3d = reorient(_embed_3d(image), code + "S")
        return _squeeze_2d(out3d, image)
    dtype = image.dtype

    def one(channel: MedicalImage) -> MedicalImage:
        f = sitk.DICOMOrientImageFilter()
        f.SetDesiredCoordinateOrientation(code)
        out = from_sitk_like(f.Execute(channel.to_sitk()), channel)
        return out.with_array(out.array.astype(dtype, copy=False))

    return map_channel_images(image, one)
