"""Chest X-ray lung fields, classically: the two large dark regions inside the thorax.

A rough estimate (mean Dice about 0.84 on JSRT, and it fails on some films); the learned
``cxr-lungs`` model is the real answer. Works on frontal chest radiographs displayed with air
dark (MONOCHROME2).

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> yy, xx = np.mgrid[:128, :128]
    >>> img = np.full((128, 128), 200.0)
    >>> img[((yy - 64) / 40) ** 2 + ((xx - 40) / 18) ** 2 < 1] = 60
    >>> img[((yy - 64) / 40) ** 2 + ((xx - 88) / 18) ** 2 < 1] = 60
    >>> seg = run_recipe("cxr-lungs-classical", MedicalImage(img, modality="DX"))
    >>> sorted(set(seg.array.ravel().tolist()))
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import exposure

from medlabel.image import MedicalImage
from medlabel.segment.blocks import (
    close,
    dilate,
    erode,
    fill_holes,
    keep_largest,
    otsu,
    remove_border_touching,
)
from medlabel.segment.recipes.base import Recipe, register, run_recipe

__all__ = ["lung_fields", "run_recipe"]

#: Erosion (in pixels of a 256 px image) that cuts the lung fields loose from their surroundings.
CORE_MM = 12.0


def lung_fields(image: MedicalImage) -> np.ndarray:
    """Label array: 1 right lung (image left on a PA view), 2 left lung."""
    values = np.asarray(image.array, dtype=np.float32)
    ny, nx = values.shape
    px = min(ny, nx) / 256.0  # work in "pixels of a 256 px image" whatever the input size
    lo, hi = np.percentile(values, [1, 99])
    norm = np.clip((values - lo) / max(hi - lo, 1e-6), 0, 1)
    norm = exposure.equalize_adapthist(norm, clip_limit=0.01)
    smooth = ndimage.gaussian_filter(norm, 2.0 * px)
    centre = np.zeros_like(smooth, bool)
    centre[int(ny * 0.1) : int(ny * 0.9), int(nx * 0.1) : int(nx * 0.9)] = True
    dark = smooth < otsu(smooth, mask=centre)
    # thin bridges join the lung fields to the dark surroundings (above the shoulders, the
    # axillae): erode them away, keep what lies clear of the side edges, grow back
    core = remove_border_touching(erode(dark, CORE_MM * px), axes=(1,))
    out = np.zeros(values.shape, np.uint8)
    cols = np.arange(nx)[None, :]
    # a PA view shows the patient's right lung on the image's left; the spine and trachea
    # lie in the middle, so each half holds one lung field
    for side, half in ((1, cols < nx * 0.48), (2, cols > nx * 0.52)):
        field = keep_largest(core & half)
        field = dilate(field, CORE_MM * px) & dark & half
        if field.sum() >= 0.01 * ny * nx:
            out[fill_holes(close(field, 4.0 * px)) & half] = side
    return out


register(
    Recipe(
        "cxr-lungs-classical",
        ("CR", "DX", "OT"),
        2,
        {1: "lung_right", 2: "lung_left"},
        "rough lung fields on a frontal chest X-ray (dark regions inside the thorax)",
        lung_fields,
    )
)
