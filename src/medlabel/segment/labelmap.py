"""Label maps: integer masks on an image's grid, with their class names.

A label map is a :class:`~medlabel.image.MedicalImage` with ``is_label=True``, an unsigned
integer array and ``metadata["labels"]`` mapping each value to a class name (0 is background).

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> ct = MedicalImage(np.zeros((2, 3, 4), np.int16), spacing=(1, 1, 3))
    >>> seg = label_map(ct, np.ones((2, 3, 4), bool), {1: "body"})
    >>> seg.is_label, seg.spacing, label_names(seg)
    (True, (1.0, 1.0, 3.0), {1: 'body'})
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medlabel.image import MedicalImage

__all__ = ["label_map", "label_names"]


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
        metadata={"labels": {int(k): str(v) for k, v in names.items()}},
        is_label=True,
    )


def label_names(seg: MedicalImage) -> dict[int, str]:
    """Class names of a label map (``label_<n>`` for values without a recorded name)."""
    names = {int(k): str(v) for k, v in dict(seg.metadata.get("labels", {})).items()}
    for value in np.unique(seg.array).tolist():
        if value != 0 and int(value) not in names:
            names[int(value)] = f"label_{int(value)}"
    return dict(sorted(names.items()))
