"""MRI recipes by intensity and morphology: head foreground and an approximate brain mask.

Example:
    >>> from medlabel.segment.recipes.mri import head_phantom
    >>> mr, truth = head_phantom()
    >>> seg = run_recipe("mri-brain", mr)
    >>> bool(((seg.array == 1) & (truth == 2)).sum() > 0.8 * (truth == 2).sum())
    True
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.preprocess.network import nonfinite_reason
from medlabel.segment.blocks import close, dilate, erode, fill_holes, keep_largest, otsu
from medlabel.segment.recipes.base import Recipe, register, run_recipe

__all__ = ["brain_mask", "head_mask", "head_phantom", "run_recipe"]


def _smoothed(image: MedicalImage) -> np.ndarray:
    values = np.asarray(image.array, dtype=np.float32)
    reason = nonfinite_reason(values)
    if reason:
        raise MedlabelError(image.metadata.get("path"), reason)
    sigma = [1.0 / s for s in image.spacing[::-1]]  # about 1 mm
    return np.asarray(ndimage.gaussian_filter(values, sigma))


def head_mask(image: MedicalImage) -> np.ndarray:
    """Foreground (the head) by Otsu's threshold, largest piece, holes filled."""
    smooth = _smoothed(image)
    try:
        level = otsu(smooth)
    except ValueError as err:
        raise MedlabelError(image.metadata.get("path"), "the image is blank") from err
    head = keep_largest(smooth > level * 0.5)
    head = close(head, 3.0, image.spacing)
    if image.ndim == 3:
        head = fill_holes(head, axis=int(np.argmin(image.array.shape)))
    return fill_holes(head)


def brain_mask(image: MedicalImage) -> np.ndarray:
    """Approximate brain: bright tissue inside the head, cut loose from scalp and skull by a
    5 mm erosion, the largest piece grown back and filled."""
    smooth = _smoothed(image)
    head = head_mask(image)
    level = otsu(smooth, mask=head)
    tissue = (smooth > level * 0.6) & erode(head, 3.0, image.spacing)
    core = keep_largest(erode(tissue, 5.0, image.spacing))
    if not core.any():
        return core
    brain = dilate(core, 5.0, image.spacing) & tissue
    brain = close(brain, 3.0, image.spacing)
    if image.ndim == 3:
        brain = fill_holes(brain, axis=int(np.argmin(image.array.shape)))
    return fill_holes(brain) & head


def head_phantom(shape: tuple[int, int, int] = (24, 64, 64)) -> tuple[MedicalImage, np.ndarray]:
    """A synthetic T1-like head (3 mm slices): 1 scalp and skull region, 2 brain."""
    z, y, x = np.indices(shape).astype(np.float32)
    c = [n / 2 for n in shape]
    r = (
        ((z - c[0]) / (shape[0] * 0.45)) ** 2
        + ((y - c[1]) / (shape[1] * 0.42)) ** 2
        + ((x - c[2]) / (shape[2] * 0.36)) ** 2
    )
    truth = np.zeros(shape, np.uint8)
    truth[r <= 1] = 1
    truth[r <= 0.6] = 2
    values = np.zeros(shape, np.float32)
    values[truth == 1] = 300.0  # scalp
    values[(r > 0.72) & (r <= 0.85)] = 30.0  # dark skull between scalp and brain
    values[(r > 0.6) & (r <= 0.72)] = 60.0  # CSF
    values[truth == 2] = 500.0
    values += np.random.default_rng(0).normal(0, 10, shape).astype(np.float32)
    return MedicalImage(np.clip(values, 0, None), spacing=(2.0, 2.0, 3.0), modality="MR"), truth


register(Recipe("mri-head", ("MR",), 3, {1: "head"}, "head foreground (Otsu, filled)", head_mask))
register(
    Recipe(
        "mri-brain",
        ("MR",),
        3,
        {1: "brain"},
        "approximate brain mask (T1/T2, morphology)",
        brain_mask,
    )
)
