"""Building blocks of classical segmentation, on NumPy arrays with physical spacing.

Arrays are in NumPy order (``[z, y, x]``); ``spacing`` arguments are in ITK order
``(x, y[, z])`` like :attr:`medlabel.image.MedicalImage.spacing`, so a block can be called as
``dilate(mask, 5.0, image.spacing)``. Sizes and radii are in millimetres, so a recipe behaves
the same on a 0.7 mm and a 3 mm scan.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((9, 9), bool); mask[4, 4] = True
    >>> int(dilate(mask, 2.0, (1.0, 1.0)).sum())
    13
"""

from medlabel.segment.blocks.components import (
    connected_components,
    keep_largest,
    remove_border_touching,
    remove_small,
)
from medlabel.segment.blocks.grow import region_grow
from medlabel.segment.blocks.morphology import (
    close,
    dilate,
    erode,
    fill_holes,
    fill_small_holes,
    open_,
)
from medlabel.segment.blocks.threshold import HU_RANGES, hu_range, otsu, threshold
from medlabel.segment.blocks.watershed import split_touching

__all__ = [
    "HU_RANGES",
    "close",
    "connected_components",
    "dilate",
    "erode",
    "fill_holes",
    "fill_small_holes",
    "hu_range",
    "keep_largest",
    "open_",
    "otsu",
    "region_grow",
    "remove_border_touching",
    "remove_small",
    "split_touching",
    "threshold",
]
