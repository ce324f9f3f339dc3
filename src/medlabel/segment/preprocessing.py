"""Applying a plan to an image, and mapping predictions back to the image's own grid.

:func:`to_network` turns any input (any size, spacing, orientation; grey or colour) into the
normalised array the network was trained on (a 3D volume first permuted and flipped into the
plan's orientation), and remembers the grid it came from; :func:`to_native` resamples class
probabilities from the network's grid back onto that grid (linear interpolation of
probabilities, then argmax) and undoes the permutation exactly, so the label map lines up with
the input voxel for voxel.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> from medlabel.segment.plan import Plan
    >>> plan = Plan(2, None, {1: "a"}, "size", (32.0, 32.0), "zscore", (32, 32), 2,
    ...             {"name": "unet", "kwargs": {}})
    >>> img = MedicalImage(np.random.default_rng(0).random((50, 40)), spacing=(0.5, 0.5))
    >>> x, grid = to_network(img, plan)
    >>> x.shape, round(float(x.mean()), 6)
    ((32, 32), 0.0)
    >>> probs = np.stack([np.ones((32, 32)), np.zeros((32, 32))]).astype(np.float32)
    >>> to_native(probs, grid, plan).array.shape
    (50, 40)
"""

from __future__ import annotations

import numpy as np

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.preprocess.network import luminance, nonfinite_reason
from medlabel.preprocess.orient import orientation_code, reorient
from medlabel.preprocess.resample import resample_to_reference, resample_to_spacing
from medlabel.preprocess.resize import resize
from medlabel.segment.fingerprint import in_orientation
from medlabel.segment.labelmap import label_map
from medlabel.segment.plan import Plan

__all__ = ["normalize", "to_native", "to_network", "work_image"]


def _grey(image: MedicalImage) -> MedicalImage:
    if not image.channels:
        return image
    if image.channels in (3, 4):
        return image.with_array(luminance(image.array))
    raise MedlabelError(
        image.metadata.get("path"), f"{image.channels}-channel images are not supported"
    )


def _spatial(image: MedicalImage, plan: Plan) -> MedicalImage:
    """The image in the plan's dimensionality (a 1-slice volume counts as 2D)."""
    if image.ndim == plan.dims:
        return image
    if plan.dims == 2 and image.ndim == 3 and image.array.shape[0] == 1:
        return MedicalImage(
            image.array[0],
            spacing=image.spacing[:2],
            modality=image.modality,
            metadata=image.metadata,
        )
    raise MedlabelError(
        image.metadata.get("path"),
        f"this model segments {plan.dims}D images; the input is {image.ndim}D",
    )


def work_image(image: MedicalImage, plan: Plan, *, is_label: bool = False) -> MedicalImage:
    """``image`` on the network's grid (before normalisation)."""
    img = in_orientation(_spatial(image if is_label else _grey(image), plan), plan.orientation)
    if plan.fit == "size":
        size = [int(s) for s in plan.target]
        if tuple(img.size) == tuple(size):
            return img
        return resize(
            img, size, interpolation="nearest" if is_label else "linear", anti_alias=not is_label
        )
    if np.allclose(img.spacing, plan.target, rtol=1e-4):
        return img
    return resample_to_spacing(img, plan.target, interpolation="nearest" if is_label else "linear")


def normalize(values: np.ndarray, plan: Plan) -> np.ndarray:
    """Intensity normalisation of the plan (float32)."""
    x = np.asarray(values, dtype=np.float32)
    reason = nonfinite_reason(x)
    if reason:
        raise MedlabelError(None, reason)
    if plan.normalization == "ct":
        lo, hi = plan.clip or (-1000.0, 1000.0)
        return (np.clip(x, lo, hi) - plan.mean) / plan.std
    std = float(x.std())
    return (x - float(x.mean())) / (std if std > 1e-6 else 1.0)


def to_network(image: MedicalImage, plan: Plan) -> tuple[np.ndarray, MedicalImage]:
    """Normalised spatial array for the network, and the (2D/3D) input grid to map back to."""
    native = _spatial(_grey(image), plan)
    grid = in_orientation(native, plan.orientation)
    work = work_image(grid, plan)
    meta = dict(grid.metadata)
    meta["_work_grid"] = work.with_array(np.zeros(work.array.shape, np.uint8))  # geometry only
    if grid is not native:  # to_native permutes the labels back onto the stored grid
        meta["_native_grid"] = native.with_array(np.zeros(native.array.shape, np.uint8))
    return normalize(work.array, plan), grid.with_array(grid.array, metadata=meta)


def to_native(probs: np.ndarray, grid: MedicalImage, plan: Plan) -> MedicalImage:
    """Label map on the input's grid (from :func:`to_network`) from ``(K+1, *work_shape)``
    probabilities."""
    work = grid.metadata["_work_grid"]
    if probs.shape[1:] != work.array.shape:
        raise ValueError(f"probabilities of shape {probs.shape[1:]} do not fit {work.array.shape}")
    same = work.direction == grid.direction and work.origin == grid.origin
    if same and tuple(work.size) == tuple(grid.size) and work.spacing == grid.spacing:
        labels = np.argmax(probs, axis=0)
    else:
        stacked = work.with_array(np.moveaxis(probs.astype(np.float32), 0, -1))
        back = resample_to_reference(stacked, grid, interpolation="linear")
        labels = np.argmax(back.array, axis=-1)
    meta = {k: v for k, v in grid.metadata.items() if k not in ("_work_grid", "_native_grid")}
    native = grid.metadata.get("_native_grid")
    if native is not None:  # a pure permutation and flip: exact, no interpolation
        stored = reorient(grid.with_array(labels.astype(np.uint16)), orientation_code(native))
        return label_map(native.with_array(native.array, metadata=meta), stored.array, plan.classes)
    return label_map(grid.with_array(grid.array, metadata=meta), labels, plan.classes)
