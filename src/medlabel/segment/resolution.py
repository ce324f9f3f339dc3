"""Is an image coarser than every image a segmentation model trained on?

A model that works at a fixed spacing (the self-configured 3D U-Nets) resamples each input to
its target spacing: a scan with 5 mm slices given to a model trained on 1 mm voxels is
interpolated up, and the network draws on detail the scan never had. A whole-image model
(``cxr-lungs``) resizes each image to its input size: a thumbnail is enlarged beyond anything
it trained on. Either way the mask is less reliable, though not meaningless, so this is a
note, not one of the :mod:`.plausibility` findings that mark a result out of distribution.

The comparison is with the coarsest training image (spacings compared sorted, so storage
order does not matter; whole-image models compare sizes, as classifiers do in
:mod:`medlabel.classify.resolution`). Only rounding in image headers is tolerated (1 %), so
there is no threshold to choose.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> fp = {"spacings": [[1.0, 1.0, 1.0], [0.9, 0.9, 1.2]], "sizes": [[35, 50, 36]] * 2}
    >>> thick = MedicalImage(np.zeros((8, 50, 35), np.float32), spacing=(1.0, 1.0, 5.0))
    >>> print(coarser_than_training(thick, fp, "spacing", (1.0, 1.0, 1.0)).split(":")[0])
    voxels 1 x 1 x 5 mm, coarser than every training image (at most 1 x 1 x 1.2 mm)
    >>> fine = MedicalImage(np.zeros((36, 50, 35), np.float32), spacing=(1.0, 1.0, 1.0))
    >>> coarser_than_training(fine, fp, "spacing", (1.0, 1.0, 1.0)) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medlabel.classify.resolution import describe_size, enlarged_beyond_training
from medlabel.image import MedicalImage

__all__ = ["ROUNDING", "coarser_than_training"]

#: relative difference taken as rounding in image headers, not a coarser image
ROUNDING = 0.01


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:.3g}" for v in values)


def coarser_than_training(
    image: MedicalImage, fingerprint: Mapping[str, Any], fit: str, target: Sequence[float]
) -> str | None:
    """Why ``image`` holds less detail than every training image and than what the network
    takes (``None``: it does not, or too little is recorded to tell).

    Args:
        image: the input.
        fingerprint: the bundle's ``fingerprint`` (ITK-order ``spacings`` and ``sizes`` of
            every training case).
        fit: the plan's ``"spacing"`` (resampled to ``target`` spacing) or ``"size"``
            (resized to ``target`` voxels).
        target: the plan's target spacing or size, ITK order.
    """
    if fit == "spacing":
        spacings = fingerprint.get("spacings") or []
        if not spacings or not image.spacing_known or len(image.spacing) != len(target):
            return None
        if any(len(s) != len(target) for s in spacings):
            return None
        mine = np.sort(np.asarray(image.spacing, dtype=float))
        coarsest = np.max(np.sort(np.asarray(spacings, dtype=float), axis=1), axis=0)
        aim = np.sort(np.asarray(target, dtype=float))
        limit = np.maximum(coarsest, aim) * (1 + ROUNDING)
        if not np.any(mine > limit):
            return None
        return (
            f"voxels {_mm(image.spacing)} mm, coarser than every training image (at most "
            f"{_mm(coarsest)} mm): the model sees it interpolated, with less detail than it "
            "learnt from"
        )
    sizes = fingerprint.get("sizes") or []
    size = tuple(int(s) for s in image.size)
    if len(size) == len(target) + 1 and size[-1] == 1:  # a one-slice volume for a 2D model
        size = size[:-1]
    if not sizes or len(size) != len(target) or any(len(s) != len(target) for s in sizes):
        return None
    # array order for the shared check; the record's smallest size per axis
    record = {"min": np.min(np.asarray(sizes), axis=0)[::-1].tolist()}
    network = [round(float(t)) for t in target][::-1]
    if not enlarged_beyond_training(np.array([size[::-1]]), record, network)[0]:
        return None
    return (
        f"{describe_size(size[::-1])} pixels, smaller than every training image (smallest "
        f"{describe_size(record['min'])}): the model sees it enlarged, with less detail than "
        "it learnt from"
    )
