"""Region growing from seed points (SimpleITK's connected-threshold filter).

Example:
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.float32); img[:, 3:] = 100
    >>> int(region_grow(img, [(0, 0)], lower=-10, upper=10).sum())
    15
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

__all__ = ["region_grow"]


def region_grow(
    values: np.ndarray,
    seeds: Sequence[Sequence[int]],
    lower: float,
    upper: float,
    full_connectivity: bool = False,
) -> np.ndarray:
    """Voxels connected to ``seeds`` whose values lie in ``[lower, upper]``.

    Args:
        values: image array (NumPy order).
        seeds: indices in NumPy order (``(z, y, x)``); seeds outside the range are ignored.
        lower: lowest value included.
        upper: highest value included.
        full_connectivity: also connect through edges and corners.
    """
    arr = np.asarray(values)
    shape = arr.shape
    valid = [
        tuple(int(i) for i in s)
        for s in seeds
        if all(0 <= int(i) < n for i, n in zip(s, shape, strict=True))
        and lower <= arr[tuple(int(i) for i in s)] <= upper
    ]
    if not valid:
        return np.zeros(shape, bool)
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    grower = sitk.ConnectedThresholdImageFilter()
    grower.SetLower(float(lower))
    grower.SetUpper(float(upper))
    grower.SetReplaceValue(1)
    grower.SetConnectivity(
        grower.FullConnectivity if full_connectivity else grower.FaceConnectivity
    )
    for seed in valid:
        grower.AddSeed(seed[::-1])  # ITK index order
    return sitk.GetArrayFromImage(grower.Execute(img)).astype(bool)
