"""Label maps: integer masks on an image's grid, with their class names.

A label map is a :class:`~medlabel.image.MedicalImage` with ``is_label=True``, an unsigned
integer array and ``metadata["labels"]`` mapping each value to a class name (0 is background).
Sizes come in mL or cm², or in voxels or pixels when the image gives no pixel size; the same
units name the size and distance keys of segmentation metrics (:func:`true_size`,
:func:`distance_key`), kept here so that reading them needs none of the evaluation machinery.

Example:
    >>> import numpy as np
    >>> from medlabel.image import SIZE_UNITS, SPACING_UNKNOWN, MedicalImage
    >>> ct = MedicalImage(np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 3))
    >>> seg = label_map(ct, np.ones((2, 3, 4), bool), {1: "body"})
    >>> seg.is_label, seg.spacing, label_names(seg)
    (True, (1.0, 1.0, 3.0), {1: 'body'})
    >>> sizes, unit = label_sizes(seg)
    >>> round(sizes[1], 6), unit
    (0.072, 'mL')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medlabel.image import SIZE_UNITS, SPACING_UNKNOWN, MedicalImage

__all__ = ["distance_key", "label_map", "label_names", "label_sizes", "size_unit", "true_size"]


def label_map(
    reference: MedicalImage, labels: np.ndarray, names: Mapping[int, str]
) -> MedicalImage:
    """A label map with ``labels`` (spatial array) on the grid of ``reference``.

    Args:
        reference: the image segmented; spacing, origin and direction are copied.
        labels: integer or boolean array with ``reference``'s spatial shape.
        names: class name of each non-zero value.

    Raises:
        ValueError: when the shapes differ or a value is missing from ``names``.
    """
    shape = reference.array.shape[: reference.ndim]
    arr = np.asarray(labels)
    if arr.shape != shape:
        raise ValueError(f"label array shape {arr.shape} differs from the image's {shape}")
    top = max([0, *names])
    dtype = np.uint8 if top < 256 else np.uint16
    out = arr.astype(dtype)
    unknown = sorted(set(np.unique(out).tolist()) - {0} - set(names))
    if unknown:
        raise ValueError(f"label values {unknown} have no class name")
    return MedicalImage(
        out,
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction,
        modality=reference.modality,
        metadata={
            "labels": {int(k): str(v) for k, v in names.items()},
            **({} if reference.spacing_known else {SPACING_UNKNOWN: True}),
        },
        is_label=True,
    )


def label_names(seg: MedicalImage) -> dict[int, str]:
    """Class names of a label map (``label_<n>`` for values without a recorded name)."""
    names = {int(k): str(v) for k, v in dict(seg.metadata.get("labels", {})).items()}
    for value in np.unique(seg.array).tolist():
        if value != 0 and int(value) not in names:
            names[int(value)] = f"label_{int(value)}"
    return dict(sorted(names.items()))


def size_unit(image: MedicalImage, known: bool | None = None) -> tuple[str, float]:
    """The unit sizes of ``image``'s structures are given in, and the size of one voxel in it.

    ``known`` overrides ``image.spacing_known`` (e.g. with that of the image a mask was made from).

    ``mL`` for volumes and ``cm2`` for 2D images (and single slices) with a known pixel size;
    ``voxels`` or ``px`` when the file gave none (see
    :attr:`~medlabel.image.MedicalImage.spacing_known`), rather than a made-up millimetre.

    Example:
        >>> size_unit(MedicalImage(np.zeros((4, 4)), spacing=(0.5, 0.5)))
        ('cm2', 0.0025)
        >>> size_unit(MedicalImage(np.zeros((4, 4)), metadata={SPACING_UNKNOWN: True}))
        ('px', 1.0)
    """
    dims = 2 if image.ndim == 2 or image.array.shape[0] == 1 else 3
    known = image.spacing_known if known is None else known
    unit, scale = SIZE_UNITS[(dims, known)]
    return unit, float(np.prod(image.spacing[:dims])) * scale if known else 1.0


def label_sizes(seg: MedicalImage, known: bool | None = None) -> tuple[dict[int, float], str]:
    """Size of every named class of a label map (0 when absent) and the unit (:func:`size_unit`,
    ``known`` as there)."""
    unit, each = size_unit(seg, known)
    counts = np.bincount(seg.array.ravel().astype(np.int64), minlength=1)
    sizes = {v: float(counts[v]) * each if v < len(counts) else 0.0 for v in label_names(seg)}
    return sizes, unit


def true_size(figures: Mapping[str, Any], dims: int) -> float | None:
    """The truth's size in one class's per-case metrics, in mm³ (3D) or mm² (2D), or in voxels
    or pixels when the grid had no pixel size; ``None`` when not recorded.

    Also reads the figures of older bundles, which stored 2D sizes as ``volume_true_ml``
    holding cm².

    Example:
        >>> true_size({"area_true_cm2": 1.5}, 2), true_size({"volume_true_ml": 2.0}, 3)
        (150.0, 2000.0)
    """
    for key, value in figures.items():
        stem, _, unit = key.rpartition("_")
        if stem in ("volume_true", "area_true") and value is not None:
            scale = {"ml": 1000.0 if dims == 3 else 100.0, "cm2": 100.0}.get(unit, 1.0)
            return float(value) * scale
    return None


def distance_key(metrics: Mapping[str, Any], name: str = "hd95") -> tuple[str, str]:
    """The key and unit of a distance metric (``hd95`` or ``asd``) in a class's metrics or
    summary: ``("hd95_mm", "mm")``, or ``("hd95_px", "px")`` when the grid had no pixel size.

    Example:
        >>> distance_key({"dice": 0.9, "hd95_px": 3.0})
        ('hd95_px', 'px')
    """
    return (f"{name}_px", "px") if f"{name}_px" in metrics else (f"{name}_mm", "mm")
