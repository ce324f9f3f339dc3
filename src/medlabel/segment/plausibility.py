"""Whether a segmentation looks like the ones its model was trained on.

A model given an image unlike its training images (a whole brain to a model trained on
hippocampus crops, a CT slice to a chest X-ray model) still writes a mask, and nothing in the
mask says it is meaningless. Three checks, from what the bundle records about its training
data and its validation images, say so in words:

- **field of view** (models that work at a fixed spacing): the image's physical extent, axes
  compared sorted, against the range of the training images, widened by a factor of 1.5;
- **structure size**: each class's size against the range seen in training, widened by a
  factor of 2, and a class missing although every training image had it. Sizes are physical
  (mL, or mm² on 2D images) for fixed-spacing models and a share of the image for whole-image
  models, whose inputs often have no trustworthy pixel spacing (PNG exports);
- **hesitation**: the mean voxel entropy inside the predicted structures above 3 times the
  largest seen on the model's validation images. A network shown something new often still
  draws plausible shapes, but it draws them unsure.

The size ranges come from the fingerprint's per-case ``class_sizes`` (bundles trained since
this module exists); older bundles fall back on their validation cases' true volumes. The
entropy reference is the validation record's ``structure_entropy``. The factors were set
after looking at right and wrong images (``benchmarks/bench_plausibility.py``), so the rates
measured there are not an independent test.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> exp = Expectations("physical", {1: SizeRange(1000.0, 3000.0, True)}, None, 0.05)
    >>> img = MedicalImage(np.zeros((20, 20, 20), np.float32))
    >>> labels = np.zeros((20, 20, 20), np.uint8); labels[:10] = 1  # 4000 mm³
    >>> implausible(img, labels, exp, {1: "hippocampus"})
    []
    >>> labels[:] = 1  # 8000 mm³: more than twice the largest training structure
    >>> implausible(img, labels, exp, {1: "hippocampus"})
    ['hippocampus is 8 mL; in training it was 1-3 mL']
    >>> print(implausible(img, labels, exp, {1: "hippocampus"}, entropy=0.2)[-1])
    the network hesitates (entropy 0.2 in its structures; at most 0.05 on its validation images)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlabel.image import MedicalImage

__all__ = [
    "ENTROPY_FACTOR",
    "EXTENT_FACTOR",
    "SIZE_FACTOR",
    "Expectations",
    "SizeRange",
    "entropy_summary",
    "expectations",
    "extent_fits",
    "implausible",
    "physical_extent",
]

#: Tolerance on the field of view per axis (the image may be this much smaller or larger).
EXTENT_FACTOR = 1.5
#: Tolerance on structure sizes (a structure may be this much smaller or larger).
SIZE_FACTOR = 2.0
#: Tolerance on the network's hesitation (times the largest on the validation images).
ENTROPY_FACTOR = 3.0


@dataclass(frozen=True)
class SizeRange:
    """Sizes of one class over the training images: smallest and largest where present, and
    whether every image had it."""

    lo: float
    hi: float
    always: bool


@dataclass(frozen=True)
class Expectations:
    """What a model's training images looked like.

    Attributes:
        measure: ``"physical"`` (mm³ or mm²) or ``"share"`` (of the image's pixels).
        sizes: per class index, the sizes seen in training.
        extent_mm: per sorted axis, the smallest and largest physical extent of the training
            images (``None``: not checked).
        entropy_max: the largest mean structure entropy on the validation images (``None``:
            not recorded, not checked).
    """

    measure: str
    sizes: dict[int, SizeRange]
    extent_mm: tuple[tuple[float, float], ...] | None
    entropy_max: float | None = None


def physical_extent(size: Sequence[int], spacing: Sequence[float]) -> list[float]:
    """An image's physical extent per axis in mm, sorted (so storage order does not matter).

    Example:
        >>> physical_extent((40, 30), (0.5, 2.0))
        [20.0, 60.0]
    """
    return sorted(float(n) * float(s) for n, s in zip(size, spacing, strict=False))


def extent_fits(
    extent: Sequence[float],
    ranges: Sequence[tuple[float, float]],
    factor: float = EXTENT_FACTOR,
) -> bool:
    """Whether a sorted ``extent`` lies, axis by axis, within ``ranges`` widened by ``factor``.

    Example:
        >>> extent_fits([20.0, 60.0], [(15.0, 30.0), (50.0, 50.0)])
        True
        >>> extent_fits([20.0, 90.0], [(15.0, 30.0), (50.0, 50.0)])
        False
    """
    return len(extent) == len(ranges) and all(
        lo / factor <= v <= hi * factor for v, (lo, hi) in zip(extent, ranges, strict=True)
    )


def entropy_summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """What a bundle records of its validation images' structure entropies.

    Example:
        >>> entropy_summary([0.02, 0.01, None])
        {'max': 0.02, 'median': 0.015, 'n': 2}
    """
    v = [float(x) for x in values if x is not None]
    return {
        "max": max(v) if v else None,
        "median": float(np.median(v)) if v else None,
        "n": len(v),
    }


def _ranges(per_class: Mapping[int, Sequence[float]]) -> dict[int, SizeRange]:
    out = {}
    for c, values in per_class.items():
        v = np.asarray(values, np.float64)
        present = v[v > 0]
        if present.size:
            out[int(c)] = SizeRange(
                float(present.min()), float(present.max()), bool(present.size == v.size)
            )
    return out


def expectations(meta: Mapping[str, Any], fit: str) -> Expectations | None:
    """The expectations recorded in a segmentation bundle's description (``None``: too little
    recorded to check anything).

    ``fit`` is the plan's: ``"spacing"`` (physical sizes, field of view checked) or ``"size"``
    (whole-image models: shares of the image, no field-of-view check).
    """
    fp = meta.get("fingerprint") or {}
    sizes, spacings = fp.get("sizes") or [], fp.get("spacings") or []
    measure = "share" if fit == "size" else "physical"
    per_class: dict[int, list[float]] = {}
    if fp.get("class_sizes") and len(sizes) == len(spacings):
        areas = [float(np.prod(n) * np.prod(s)) for n, s in zip(sizes, spacings, strict=True)]
        for c, values in fp["class_sizes"].items():
            per_class[int(c)] = [
                v / a if measure == "share" else v for v, a in zip(values, areas, strict=True)
            ]
    else:  # older bundles: the validation cases' reference masks
        per_class = _from_validation(meta, fp, measure)
    extent = None
    if fit == "spacing" and sizes and len(sizes) == len(spacings):
        ext = np.array([physical_extent(a, b) for a, b in zip(sizes, spacings, strict=True)])
        extent = tuple(
            (float(lo), float(hi)) for lo, hi in zip(ext.min(0), ext.max(0), strict=True)
        )
    ranges = _ranges(per_class)
    validation = (meta.get("metrics") or {}).get("validation") or {}
    entropy_max = (validation.get("structure_entropy") or {}).get("max")
    if not ranges and extent is None and entropy_max is None:
        return None
    return Expectations(
        measure, ranges, extent, float(entropy_max) if entropy_max is not None else None
    )


def _from_validation(
    meta: Mapping[str, Any], fp: Mapping[str, Any], measure: str
) -> dict[int, list[float]]:
    cases = (meta.get("metrics") or {}).get("validation_cases") or {}
    classes = {str(v): int(k) for k, v in ((meta.get("plan") or {}).get("classes") or {}).items()}
    image = float(np.prod(fp.get("median_size") or [1]) * np.prod(fp.get("median_spacing") or [1]))
    from medlabel.segment.labelmap import true_size

    dims = int(fp.get("dims", 3))
    out: dict[int, list[float]] = {}
    for case in cases.values():
        for name, figures in case.items():
            mm = true_size(figures, dims) if isinstance(figures, dict) else None
            if name in classes and mm is not None:
                out.setdefault(classes[name], []).append(mm / image if measure == "share" else mm)
    return out


def _format(value: float, measure: str, ndim: int) -> str:
    if measure == "share":
        return f"{100 * value:.3g} %"
    return f"{value / 1000:.3g} mL" if ndim == 3 else f"{value / 100:.3g} cm²"


def implausible(
    image: MedicalImage,
    labels: np.ndarray | MedicalImage,
    exp: Expectations | None,
    classes: Mapping[int, str],
    *,
    entropy: float | None = None,
) -> list[str]:
    """Why ``labels`` (a label map on ``image``'s grid) does not look like the training
    segmentations, one sentence per finding; ``[]`` when it does (or nothing is recorded).

    ``entropy`` is the prediction's mean voxel entropy inside its structures (as
    :func:`~medlabel.segment.uncertainty.structure_entropy` gives it; ``None``: not checked).
    """
    if exp is None:
        return []
    arr = labels.array if isinstance(labels, MedicalImage) else np.asarray(labels)
    spacing = [float(s) for s in image.spacing]
    ndim = 2 if image.ndim == 2 or (image.ndim == 3 and image.array.shape[0] == 1) else 3
    voxel = float(np.prod(spacing[:ndim]))
    notes = []
    if exp.measure == "physical" and not image.spacing_known:
        notes.append(
            "the image gives no pixel size, and this model works in millimetres: "
            + " x ".join(f"{s:g}" for s in spacing[:ndim])
            + (" mm per voxel" if ndim == 3 else " mm per pixel")
            + " was assumed"
        )
    if exp.extent_mm is not None and ndim == len(exp.extent_mm):
        extent = physical_extent(image.size, spacing)
        if not extent_fits(extent, exp.extent_mm):
            notes.append(
                "the image measures "
                + " x ".join(f"{e:.0f}" for e in extent)
                + " mm; the training images measured "
                + " x ".join(f"{a:.0f}-{b:.0f}" for a, b in exp.extent_mm)
                + " mm"
            )
    counts = np.bincount(arr.ravel().astype(np.int64), minlength=max(classes, default=0) + 1)
    total = float(arr.size)
    for c, name in classes.items():
        rng = exp.sizes.get(int(c))
        if rng is None:
            continue
        size = counts[c] / total if exp.measure == "share" else counts[c] * voxel
        seen = f"{_format(rng.lo, exp.measure, ndim)}-{_format(rng.hi, exp.measure, ndim)}"
        seen = seen.replace(" mL-", "-").replace(" cm²-", "-").replace(" %-", "-")
        if size == 0:
            if rng.always:
                notes.append(f"no {name} found, though every training image had one")
        elif not rng.lo / SIZE_FACTOR <= size <= rng.hi * SIZE_FACTOR:
            notes.append(f"{name} is {_format(size, exp.measure, ndim)}; in training it was {seen}")
    if entropy is not None and exp.entropy_max and entropy > ENTROPY_FACTOR * exp.entropy_max:
        notes.append(
            f"the network hesitates (entropy {entropy:.2g} in its structures; at most "
            f"{exp.entropy_max:.2g} on its validation images)"
        )
    return notes
