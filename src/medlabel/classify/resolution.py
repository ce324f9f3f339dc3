"""Native image sizes: is an input enlarged beyond anything the classifier trained on?

A classifier's network takes one fixed size (``cxr-pneumonia``: 128 x 128 pixels). Training
images larger than that were shrunk to it, so the model learnt from images that had more
detail than its input holds. An input smaller than every training image along some axis, and
smaller than the network input there, is enlarged instead: the detail the model relies on is
missing, and its figures need not hold (the bundled ``cxr-pneumonia``, trained on 224-pixel
radiographs, scores accuracy 0.82 on the 28-pixel PneumoniaMNIST test images against 0.97 on
its validation images; ``benchmarks/results/robustness-cxr-pneumonia-2026-12-07.md``). The
deep-feature check of :mod:`.ood` lets about half of such thumbnails through, because they
still look like radiographs. This check is a comparison of sizes with the smallest training
image, a fact rather than a statistic, so it has no threshold to choose.

Bundles record the range of their training images' native sizes (``data.native_size`` in
``bundle.json``, array order: rows, columns); bundles without it are not checked.

Example:
    >>> import numpy as np
    >>> record = size_record(np.array([[224, 224], [240, 230]]))
    >>> record
    {'min': [224, 224], 'max': [240, 230]}
    >>> sizes = np.array([[28, 28], [200, 200], [512, 512]])
    >>> enlarged_beyond_training(sizes, record, (128, 128)).tolist()
    [True, False, False]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["describe_size", "enlarged_beyond_training", "size_record"]


def size_record(sizes: np.ndarray) -> dict[str, list[int]]:
    """Smallest and largest native size per axis of images ``(N, dims)`` (for ``bundle.json``).

    Raises:
        ValueError: no sizes, or not one row per image.
    """
    arr = np.asarray(sizes)
    if arr.ndim != 2 or not len(arr):
        raise ValueError("sizes must be (N, dims) with N >= 1")
    return {"min": [int(v) for v in arr.min(axis=0)], "max": [int(v) for v in arr.max(axis=0)]}


def enlarged_beyond_training(
    sizes: np.ndarray, record: dict[str, Any], network_size: Sequence[int]
) -> np.ndarray:
    """``True`` for each image ``(N, dims)`` that is smaller, along some axis, than both the
    smallest training image and the network input: the network sees it enlarged further
    than it ever saw a training image.

    Raises:
        ValueError: sizes of another dimensionality than the record's.
    """
    arr = np.asarray(sizes, dtype=np.int64).reshape(len(sizes), -1)
    smallest = np.asarray(record["min"], dtype=np.int64)
    network = np.asarray(tuple(network_size), dtype=np.int64)
    if arr.shape[1] != len(smallest) or len(network) != len(smallest):
        raise ValueError(
            f"sizes of {arr.shape[1]} axes cannot be compared with training sizes of "
            f"{len(smallest)} and a network input of {len(network)}"
        )
    return np.any((arr < smallest) & (arr < network), axis=1)


def describe_size(size: Sequence[int]) -> str:
    """A size in array order, written as people read image sizes: ``(rows, cols)`` as
    ``cols x rows`` (width first), volumes as ``x x y x z``.

    Example:
        >>> describe_size([224, 200])
        '200 x 224'
    """
    return " x ".join(str(int(v)) for v in reversed(tuple(size)))
