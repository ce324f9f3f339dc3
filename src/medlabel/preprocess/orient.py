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

import itertools

import numpy as np
import SimpleITK as sitk

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage, same_grid
from medlabel.preprocess._common import from_sitk_like, map_channel_images

__all__ = ["axes_in_orientation", "orientation_code", "reorient", "reorient_onto"]

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


def reorient_onto(
    image: MedicalImage, reference: MedicalImage, tolerance: float = 0.01
) -> MedicalImage | None:
    """``image`` moved exactly onto ``reference``'s grid when both hold the same voxel
    centres, stored with axes permuted or flipped (a mask saved as LAS for an LPS series);
    ``None`` when the lattices differ.

    No interpolation: the voxels are only reordered (:func:`reorient`), so labels and values
    are kept exactly. The lattices match when, after reorienting to ``reference``'s
    orientation code, the sizes are equal and every corner voxel centre lies within
    ``tolerance`` voxels (of ``reference``'s finest spacing) of ``reference``'s.

    Args:
        image: the image to move (a mask, a second sequence; any channels).
        reference: the image whose grid is wanted.
        tolerance: allowed distance between corresponding voxel centres, in voxels.

    Returns:
        ``image``'s voxels on exactly ``reference``'s size, spacing, origin and direction,
        with ``image``'s dtype, modality, metadata and label flag; or ``None``.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ct = MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 2))
        >>> las = MedicalImage(np.arange(24).reshape(2, 3, 4), spacing=(1, 1, 2),
        ...                    origin=(0, 2, 0), direction=(1, 0, 0, 0, -1, 0, 0, 0, 1))
        >>> onto = reorient_onto(las, ct)
        >>> onto.origin, onto.array[0, :, 0].tolist()  # rows flipped back: y from 0 to 2
        ((0.0, 0.0, 0.0), [8, 4, 0])
        >>> reorient_onto(las.with_array(las.array, origin=(0.5, 2, 0)), ct) is None
        True
    """
    if image.ndim != reference.ndim or sorted(image.size) != sorted(reference.size):
        return None
    if same_grid(image, reference):
        moved = image
    else:
        moved = reorient(image, orientation_code(reference))
        if moved.size != reference.size:
            return None
    limit = tolerance * min(reference.spacing)
    for corner in itertools.product((0, 1), repeat=reference.ndim):
        index = [c * (n - 1) for c, n in zip(corner, reference.size, strict=True)]
        gap = np.linalg.norm(moved.index_to_world(index) - reference.index_to_world(index))
        if not gap <= limit:
            return None
    return moved.with_array(
        moved.array,
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction,
    )
