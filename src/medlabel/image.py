"""The one in-memory image type: :class:`MedicalImage`.

Conventions (the same as SimpleITK, so conversions are exact and free of surprises):

* ``array`` is in NumPy order: ``[y, x]`` for 2D, ``[z, y, x]`` for 3D, with a trailing
  channel axis for multi-channel images (RGB exports, ultrasound), e.g. ``[y, x, 3]``.
* ``spacing``, ``origin`` and ``size`` are in ITK order ``(x, y[, z])``, in millimetres.
* ``direction`` is the row-major ``dim x dim`` matrix whose *columns* are the world
  directions of the x, y (and z) index axes, in the patient LPS frame used by DICOM and ITK.
* The world position of voxel index ``(i, j, k)`` is
  ``origin + direction @ (spacing * (i, j, k))``.

Source metadata (patient, study and series identifiers) travels in ``metadata`` but is kept
out of ``repr`` so that it never reaches a log line. A reader whose file gives no physical
pixel size (a PNG or JPEG export, a DICOM file without PixelSpacing) assumes 1 and sets
``metadata[SPACING_UNKNOWN]``: :attr:`MedicalImage.spacing_known` is then ``False``, and sizes
and distances are reported in pixels, never as millimetres.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.zeros((4, 5, 6), np.int16), spacing=(0.5, 0.5, 2.0))
    >>> img.size, img.ndim, img.channels
    ((6, 5, 4), 3, 0)
    >>> img.index_to_world((1, 0, 2)).tolist()
    [0.5, 0.0, 4.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import SimpleITK as sitk

__all__ = ["SIZE_UNITS", "SPACING_UNKNOWN", "MedicalImage", "on_lattice_of", "same_grid"]

#: ``metadata`` key a reader sets (to ``True``) when the file gave no pixel size and 1 was assumed.
SPACING_UNKNOWN = "spacing_unknown"

#: The unit structure sizes are given in, and its share of a mm³ (mm² in 2D), by (dimensions,
#: whether the pixel size is known): without one, sizes are counts of voxels or pixels.
SIZE_UNITS: dict[tuple[int, bool], tuple[str, float]] = {
    (3, True): ("mL", 1e-3),
    (2, True): ("cm2", 1e-2),
    (3, False): ("voxels", 1.0),
    (2, False): ("px", 1.0),
}

_ORTHO_TOL = 1e-3


def _as_tuple(values: Sequence[float] | np.ndarray, n: int, name: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in np.asarray(values, dtype=float).ravel())
    if len(out) != n:
        raise ValueError(f"{name} must have {n} values, got {len(out)}")
    return out


@dataclass(frozen=True, eq=False)
class MedicalImage:
    """Voxels plus the geometry that places them in the patient.

    Args:
        array: voxel values in NumPy order (see module docstring).
        spacing: voxel size in mm along x, y(, z). Defaults to 1 mm.
        origin: world position (LPS, mm) of the first voxel's centre. Defaults to 0.
        direction: row-major direction cosine matrix. Defaults to identity.
        modality: DICOM-style modality code (``CT``, ``MR``, ``CR``, ``DX``, ``US``, ...).
        metadata: source metadata; identifiers live here and are never printed by ``repr``.
        is_label: ``True`` for label maps (integer classes): writers keep integer types and
            resamplers use nearest-neighbour interpolation.

    Example:
        >>> import numpy as np
        >>> xray = MedicalImage(np.zeros((256, 200), np.uint16), spacing=(0.2, 0.2), modality="DX")
        >>> xray.size
        (200, 256)
    """

    array: np.ndarray
    spacing: tuple[float, ...] = ()
    origin: tuple[float, ...] = ()
    direction: tuple[float, ...] = ()
    modality: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False)
    is_label: bool = False

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
        object.__setattr__(self, "array", arr)
        dim = len(self.spacing) or len(self.origin) or (int(np.sqrt(len(self.direction))) or 0)
        if dim == 0:
            dim = arr.ndim if arr.ndim in (2, 3) else 0
        if dim not in (2, 3):
            raise ValueError(f"cannot infer 2D/3D from array shape {arr.shape}; give spacing")
        if arr.ndim not in (dim, dim + 1):
            raise ValueError(f"array of shape {arr.shape} does not fit a {dim}D image")
        spacing = _as_tuple(self.spacing if len(self.spacing) else (1.0,) * dim, dim, "spacing")
        if any(not np.isfinite(s) or s <= 0 for s in spacing):
            raise ValueError(f"spacing must be positive, got {spacing}")
        origin = _as_tuple(self.origin if len(self.origin) else (0.0,) * dim, dim, "origin")
        direction = _as_tuple(
            self.direction if len(self.direction) else np.eye(dim).ravel(), dim * dim, "direction"
        )
        mat = np.asarray(direction).reshape(dim, dim)
        if not np.allclose(mat.T @ mat, np.eye(dim), atol=_ORTHO_TOL):
            raise ValueError(f"direction {direction} is not orthonormal")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "metadata", dict(self.metadata))

    # ------------------------------------------------------------------ shape
    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spacing)

    @property
    def spacing_known(self) -> bool:
        """``False`` when the reader had to assume the spacing (see :data:`SPACING_UNKNOWN`).

        Example:
            >>> import numpy as np
            >>> MedicalImage(np.zeros((2, 2)), metadata={SPACING_UNKNOWN: True}).spacing_known
            False
        """
        return not self.metadata.get(SPACING_UNKNOWN, False)

    @property
    def channels(self) -> int:
        """Number of channels: 0 for a scalar image, else the length of the last axis."""
        return 0 if self.array.ndim == self.ndim else int(self.array.shape[-1])

    @property
    def size(self) -> tuple[int, ...]:
        """Number of voxels along x, y(, z) (ITK order)."""
        return tuple(int(s) for s in self.array.shape[: self.ndim][::-1])

    @property
    def dtype(self) -> np.dtype[Any]:
        """NumPy dtype of the voxels."""
        return self.array.dtype

    @property
    def direction_matrix(self) -> np.ndarray:
        """Direction as a ``dim x dim`` array (columns are axis directions)."""
        return np.asarray(self.direction, dtype=float).reshape(self.ndim, self.ndim)

    # --------------------------------------------------------------- geometry
    def index_to_world(self, index: Sequence[float]) -> np.ndarray:
        """World (LPS, mm) position of a continuous index given in ITK order ``(i, j[, k])``."""
        idx = np.asarray(index, dtype=float)
        return np.asarray(self.origin) + self.direction_matrix @ (np.asarray(self.spacing) * idx)

    def world_to_index(self, point: Sequence[float]) -> np.ndarray:
        """Continuous ITK-order index of a world point (inverse of :meth:`index_to_world`)."""
        offset = np.asarray(point, dtype=float) - np.asarray(self.origin)
        return (self.direction_matrix.T @ offset) / np.asarray(self.spacing)

    def affine(self) -> np.ndarray:
        """4x4 (or 3x3 for 2D) matrix mapping ITK-order indices to LPS world coordinates."""
        n = self.ndim
        aff = np.eye(n + 1)
        aff[:n, :n] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        aff[:n, n] = self.origin
        return aff

    def with_array(self, array: np.ndarray, **changes: Any) -> MedicalImage:
        """Copy of this image with new voxels (same grid unless ``changes`` say otherwise).

        An unknown pixel size is part of the grid: it stays marked when ``changes`` give new
        ``metadata`` but no new ``spacing``.

        Example:
            >>> import numpy as np
            >>> img = MedicalImage(np.ones((2, 3, 4)), spacing=(1, 1, 3))
            >>> img.with_array(img.array * 2).spacing
            (1.0, 1.0, 3.0)
        """
        if "metadata" in changes and "spacing" not in changes and not self.spacing_known:
            changes["metadata"] = {**changes["metadata"], SPACING_UNKNOWN: True}
        return replace(self, array=array, **changes)

    # ------------------------------------------------------------- SimpleITK
    def to_sitk(self) -> sitk.Image:
        """Convert to a ``SimpleITK.Image`` with identical geometry."""
        arr = self.array
        if arr.dtype == np.float16:
            arr = arr.astype(np.float32)
        out = sitk.GetImageFromArray(np.ascontiguousarray(arr), isVector=self.channels > 0)
        out.SetSpacing(self.spacing)
        out.SetOrigin(self.origin)
        out.SetDirection(self.direction)
        return out

    @classmethod
    def from_sitk(
        cls,
        image: sitk.Image,
        *,
        modality: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        is_label: bool = False,
    ) -> MedicalImage:
        """Build from a ``SimpleITK.Image`` (array copied; geometry taken as is)."""
        return cls(
            sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=image.GetDirection(),
            modality=modality,
            metadata=dict(metadata or {}),
            is_label=is_label,
        )

    def geometry(self) -> dict[str, Any]:
        """Geometry and value summary in SimpleITK's conventions (used by ``medlabel info``)."""
        finite = self.array[np.isfinite(self.array)] if self.array.dtype.kind == "f" else self.array
        return {
            "size": list(self.size),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "modality": self.modality,
            "dtype": str(self.array.dtype),
            "channels": self.channels,
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        }


def same_grid(a: MedicalImage, b: MedicalImage, *, tol: float = 1e-4) -> bool:
    """Whether two images share size, spacing, origin and direction (within ``tol``).

    Example:
        >>> import numpy as np
        >>> a = MedicalImage(np.zeros((3, 3)))
        >>> same_grid(a, a.with_array(np.ones((3, 3))))
        True
    """
    return (
        a.size == b.size
        and np.allclose(a.spacing, b.spacing, rtol=0, atol=tol)
        and np.allclose(a.origin, b.origin, rtol=0, atol=tol * max(1.0, max(a.spacing)))
        and np.allclose(a.direction, b.direction, rtol=0, atol=tol)
    )


def on_lattice_of(
    image: MedicalImage, reference: MedicalImage, *, tolerance: float = 0.01
) -> MedicalImage | None:
    """``image`` on exactly ``reference``'s grid when both hold the same voxel centres stored
    with axes permuted or flipped (a TotalSegmentator mask saved as LAS for an LPS series);
    ``None`` when the lattices differ.

    No interpolation: the voxels are only transposed and flipped, so labels and values are
    kept exactly. The lattices match when every image axis runs along a reference axis
    (either way), with the same number of voxels and spacing, and every corner voxel centre
    lies within ``tolerance`` voxels (of ``reference``'s finest spacing) of its counterpart.

    Returns:
        ``image``'s voxels on ``reference``'s size, spacing, origin and direction, with
        ``image``'s dtype, channels, modality, metadata and label flag; or ``None``.

    Example:
        >>> import numpy as np
        >>> ct = MedicalImage(np.zeros((2, 3, 4)), spacing=(1, 1, 2))
        >>> las = MedicalImage(np.arange(24).reshape(2, 3, 4), spacing=(1, 1, 2),
        ...                    origin=(0, 2, 0), direction=(1, 0, 0, 0, -1, 0, 0, 0, 1))
        >>> onto = on_lattice_of(las, ct)
        >>> onto.origin, onto.array[0, :, 0].tolist()  # rows flipped back: y from 0 to 2
        ((0.0, 0.0, 0.0), [8, 4, 0])
        >>> on_lattice_of(las.with_array(las.array, origin=(0.5, 2, 0)), ct) is None
        True
    """
    n = reference.ndim
    if image.ndim != n:
        return None
    if same_grid(image, reference):
        return image
    # cosines between the axes: a signed permutation when the lattices share their axes
    cosines = reference.direction_matrix.T @ image.direction_matrix
    axis = np.argmax(np.abs(cosines), axis=0)  # reference axis of each image axis
    along = cosines[axis, np.arange(n)]
    sign = np.sign(along)
    if sorted(axis.tolist()) != list(range(n)) or np.any(np.abs(along) < 0.999):
        return None
    for j in range(n):
        k = int(axis[j])
        if image.size[j] != reference.size[k]:
            return None
        if not np.isclose(image.spacing[j], reference.spacing[k], rtol=1e-3, atol=0):
            return None
    # the reference index of a corner seen from the image: flipped axes count from the end
    limit = tolerance * min(reference.spacing)
    for corner in itertools.product((0, 1), repeat=n):
        ref_index = [c * (size - 1) for c, size in zip(corner, reference.size, strict=True)]
        img_index = [
            ref_index[int(axis[j])] if sign[j] > 0 else image.size[j] - 1 - ref_index[int(axis[j])]
            for j in range(n)
        ]
        gap = np.linalg.norm(image.index_to_world(img_index) - reference.index_to_world(ref_index))
        if not gap <= limit:
            return None
    array = image.array
    for j in range(n):  # NumPy axes run in reverse ITK order
        if sign[j] < 0:
            array = np.flip(array, axis=n - 1 - j)
    source = {int(axis[j]): j for j in range(n)}  # image axis of each reference axis
    order = [n - 1 - source[n - 1 - b] for b in range(n)] + list(range(n, array.ndim))
    return image.with_array(
        np.ascontiguousarray(np.transpose(array, order)),
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction,
    )
