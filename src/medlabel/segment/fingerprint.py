"""Dataset fingerprint: what self-configuration needs to know about a segmentation data set.

Spacings and sizes of every training case (3D cases measured in :data:`ORIENTATION_3D`, the
orientation every 3D plan brings its images to, so that cases stored in different axis
orders agree), the physical size of each labelled structure in
each case (what :mod:`medlabel.segment.plausibility` checks new segmentations against), and
intensity statistics of the voxels inside the labelled structures (for CT normalisation), in
the spirit of nnU-Net's fingerprint.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.arange(64, dtype=np.float32).reshape(4, 4, 4), spacing=(1, 1, 3))
    >>> mask = img.with_array((img.array > 31).astype(np.uint8), is_label=True)
    >>> fp = fingerprint_cases([(img, mask)], modality="CT")
    >>> fp.median_spacing, fp.median_size, round(fp.foreground_mean, 1)
    ((1.0, 1.0, 3.0), (4, 4, 4), 47.5)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medlabel.image import MedicalImage
from medlabel.preprocess.orient import orientation_code, reorient

__all__ = [
    "ORIENTATION_3D",
    "Fingerprint",
    "fingerprint_cases",
    "fingerprint_dataset",
    "in_orientation",
    "left_right_axis",
]

#: Orientation code (ITK/DICOM convention, :mod:`medlabel.preprocess.orient`) that 3D plans
#: train and predict in: a network learns anatomy in one axis order and direction, so volumes
#: stored otherwise (LPS DICOM, a flipped NIfTI) are permuted and flipped into it first.
ORIENTATION_3D = "RAS"

_SAMPLE_PER_CASE = 10_000


@dataclass
class Fingerprint:
    """Summary of a data set (ITK-order spacings and sizes)."""

    dims: int
    modality: str | None
    channels: int
    spacings: list[tuple[float, ...]]
    sizes: list[tuple[int, ...]]
    foreground_mean: float
    foreground_std: float
    foreground_p005: float
    foreground_p995: float
    class_fractions: dict[int, float] = field(default_factory=dict)
    lr_axes: list[int] = field(default_factory=list)
    class_sizes: dict[int, list[float]] = field(default_factory=dict)

    @property
    def lr_axis(self) -> int | None:
        """NumPy axis that runs left-right in every case (``None`` if the cases disagree)."""
        if self.dims != 3 or not self.lr_axes or len(set(self.lr_axes)) != 1:
            return None
        return self.lr_axes[0]

    @property
    def median_spacing(self) -> tuple[float, ...]:
        """Median spacing per axis."""
        return tuple(float(v) for v in np.median(np.array(self.spacings), axis=0))

    @property
    def median_size(self) -> tuple[int, ...]:
        """Median size per axis (voxels)."""
        return tuple(int(v) for v in np.median(np.array(self.sizes), axis=0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-case lists kept)."""
        out = asdict(self)
        out["median_spacing"] = self.median_spacing
        out["median_size"] = self.median_size
        return out


def in_orientation(image: MedicalImage, code: str | None) -> MedicalImage:
    """``image`` permuted and flipped into orientation ``code`` (unchanged when ``code`` is
    ``None``, the image is not 3D, or it is in that orientation already); every voxel keeps
    its world position.

    Example:
        >>> img = MedicalImage(np.zeros((2, 3, 4)))  # identity direction: "LPS"
        >>> in_orientation(img, "RAS").direction[:5:4], in_orientation(img, None) is img
        ((-1.0, -1.0), True)
    """
    if code is None or image.ndim != 3 or orientation_code(image) == code:
        return image
    return reorient(image, code)


def fingerprint_cases(
    cases: Iterable[tuple[MedicalImage, MedicalImage | None]],
    modality: str | None = None,
    progress: bool = False,
    seed: int = 0,
) -> Fingerprint:
    """Fingerprint of ``(image, mask)`` pairs (masks hold class indices)."""
    rng = np.random.default_rng(seed)
    spacings, sizes, samples, lr_axes = [], [], [], []
    counts: dict[int, int] = {}
    per_case: list[dict[int, float]] = []
    total = 0
    dims, channels = 0, 0
    for case_image, case_mask in tqdm(
        cases, desc="fingerprint", disable=None if progress else True
    ):
        image = in_orientation(case_image, ORIENTATION_3D)
        mask = None if case_mask is None else in_orientation(case_mask, ORIENTATION_3D)
        dims, channels = image.ndim, image.channels
        spacings.append(tuple(float(s) for s in image.spacing))
        sizes.append(tuple(int(s) for s in image.size))
        lr_axes.append(left_right_axis(image))
        values = image.array if not image.channels else image.array.mean(axis=-1)
        modality = modality or image.modality
        if mask is not None:
            fg = values[mask.array > 0]
            labels, n = np.unique(mask.array, return_counts=True)
            voxel = float(np.prod(image.spacing))
            case: dict[int, float] = {}
            for lab, c in zip(labels.tolist(), n.tolist(), strict=True):
                if lab:
                    counts[int(lab)] = counts.get(int(lab), 0) + int(c)
                    case[int(lab)] = int(c) * voxel
            per_case.append(case)
            total += mask.array.size
        else:
            fg = values.ravel()
        if fg.size:
            take = min(fg.size, _SAMPLE_PER_CASE)
            samples.append(rng.choice(fg.astype(np.float64), take, replace=False))
    if not spacings:
        raise ValueError("no cases to fingerprint")
    pool = np.concatenate(samples) if samples else np.zeros(1)
    return Fingerprint(
        dims=dims,
        modality=modality,
        channels=channels,
        spacings=spacings,
        sizes=sizes,
        foreground_mean=float(pool.mean()),
        foreground_std=float(pool.std()),
        foreground_p005=float(np.percentile(pool, 0.5)),
        foreground_p995=float(np.percentile(pool, 99.5)),
        class_fractions={k: v / max(total, 1) for k, v in sorted(counts.items())},
        lr_axes=lr_axes,
        # mm^dims per case, 0 where the class is absent (only when every case has a mask)
        class_sizes={k: [c.get(k, 0.0) for c in per_case] for k in sorted(counts)}
        if len(per_case) == len(spacings)
        else {},
    )


def left_right_axis(image: MedicalImage) -> int:
    """The NumPy axis of ``image`` whose world direction is closest to patient left-right.

    Example:
        >>> from medlabel.image import MedicalImage
        >>> left_right_axis(MedicalImage(np.zeros((2, 3, 4))))  # (z, y, x) storage
        2
    """
    dim = image.ndim
    direction = np.asarray(image.direction, dtype=float).reshape(dim, dim)
    itk_axis = int(np.argmax(np.abs(direction[0])))  # largest world-x component of each column
    return dim - 1 - itk_axis


def fingerprint_dataset(ds: Any, indices: list[int], progress: bool = True) -> Fingerprint:
    """Fingerprint of the cases ``indices`` of a :class:`SegmentationDataset`."""
    return fingerprint_cases((ds.load(i) for i in indices), ds.modality, progress=progress)
