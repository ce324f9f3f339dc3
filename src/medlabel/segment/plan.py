"""Self-configuration: a training and inference plan derived from the data's fingerprint.

The rules (nnU-Net's spirit, sized for a CPU):

* **orientation**: 3D volumes are permuted and flipped into one orientation (``"RAS"``) before
  anything else, in training and inference alike, so a volume stored in another axis order
  (LPS DICOM, a flipped NIfTI) shows the network the anatomy it learnt;
* **geometry**: 2D images are resized as a whole to a fixed size (the median size, at most
  256 px per side, a multiple of the network's total stride), since a radiograph's field of
  view is the whole chest whatever its pixel size; 3D volumes are resampled to the median
  spacing (for strongly anisotropic data the coarse axis takes the 10th percentile instead);
* **normalisation**: CT is clipped to the 0.5-99.5 percentiles of the labelled voxels and
  z-scored with their mean and standard deviation (fixed for the data set); other modalities are
  z-scored per image;
* **patch**: the median (resampled) shape rounded up to the total stride, shrunk along its
  longest axis until it fits the voxel budget (about 96^3 for 3D on a CPU);
* **network**: a residual U-Net whose depth brings the patch down to 4-8 voxels, channels
  doubling from ``width`` (16 by default) up to eight times that (16 -> 128 keeps bundles small
  enough to ship and steps fast on a CPU; 32 -> 256 buys capacity for bf16-capable CPUs);
* **batch**: as many patches as fit a per-step voxel budget (at least 2);
* **mirroring** (augmentation and test-time): for 3D data, only across the mid-sagittal plane
  (the axis that runs left-right in every case), since anatomy is nearly symmetric left-right
  but never front-back or head-foot; never when class names say left or right; never for 2D
  radiographs.

Example:
    >>> from medlabel.segment.fingerprint import ORIENTATION_3D, Fingerprint
    >>> fp = Fingerprint(2, None, 0, [(1.0, 1.0)] * 3, [(224, 224)] * 3, 100.0, 20.0, 60.0, 160.0)
    >>> plan = make_plan(fp, {1: "lung_right", 2: "lung_left", 3: "heart"})
    >>> plan.fit, plan.target, plan.patch_size, plan.mirror_axes
    ('size', (224.0, 224.0), (224, 224), ())
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medlabel.segment.fingerprint import ORIENTATION_3D, Fingerprint
from medlabel.segment.networks import DEEPLY_SUPERVISED

__all__ = ["MIRROR_CHOICES", "Plan", "make_plan"]

MIRROR_CHOICES = ("auto", "all", "none")
_MAX_2D_SIDE = 256
_PATCH_VOXELS_3D = 96**3
_STEP_VOXELS = {2: 224 * 224 * 12, 3: 96**3}


@dataclass
class Plan:
    """Everything training and inference must agree on (stored in the bundle).

    Attributes:
        dims: 2 or 3.
        modality: modality code of the training data (``None`` if unknown).
        classes: class index (1..K) -> name.
        fit: ``"size"`` (resize the whole image to ``target`` voxels) or ``"spacing"``
            (resample to ``target`` mm).
        target: ITK-order size or spacing, per ``fit``.
        normalization: ``"ct"`` or ``"zscore"``.
        clip: CT clip range; mean, std: CT z-score statistics.
        patch_size: NumPy-order patch (training and sliding window).
        batch_size: patches per step.
        network: ``{"name": ..., "kwargs": {...}}`` for :func:`build_segmentation_network`.
        mirror_axes: NumPy spatial axes flipped in augmentation and test-time augmentation.
        postprocess: class index -> ``{"largest_component": bool, "fill_holes": bool}``,
            decided on validation after training.
        slice_axis: for a 2D network on volumes, the NumPy axis slices are taken across
            (``patch_size`` is 1 along it); ``None`` when the network sees whole patches.
        orientation: orientation code 3D images are brought to before resampling (every
            axis above is in it); ``None`` for 2D plans and for bundles made before medlabel
            recorded it, which take volumes in the axis order they are stored in.
    """

    dims: int
    modality: str | None
    classes: dict[int, str]
    fit: str
    target: tuple[float, ...]
    normalization: str
    patch_size: tuple[int, ...]
    batch_size: int
    network: dict[str, Any]
    mirror_axes: tuple[int, ...] = ()
    clip: tuple[float, float] | None = None
    mean: float = 0.0
    std: float = 1.0
    postprocess: dict[int, dict[str, bool]] = field(default_factory=dict)
    slice_axis: int | None = None
    orientation: str | None = None

    @property
    def network_dims(self) -> int:
        """Spatial dimensions of the network (2 for slice-wise models of volumes)."""
        return 2 if self.slice_axis is not None else self.dims

    @property
    def network_patch(self) -> tuple[int, ...]:
        """Patch as the network sees it (the slice axis dropped for slice-wise models)."""
        if self.slice_axis is None:
            return self.patch_size
        return tuple(p for k, p in enumerate(self.patch_size) if k != self.slice_axis)

    @property
    def network_mirror_axes(self) -> tuple[int, ...]:
        """Mirror axes as the network's patches index them (shifted past a dropped slice axis)."""
        cut = self.slice_axis
        return tuple(a - int(cut is not None and a > cut) for a in self.mirror_axes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan."""
        out = asdict(self)
        out["classes"] = {str(k): v for k, v in self.classes.items()}
        out["postprocess"] = {str(k): v for k, v in self.postprocess.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["classes"] = {int(k): str(v) for k, v in d["classes"].items()}
        d["postprocess"] = {int(k): dict(v) for k, v in d.get("postprocess", {}).items()}
        d["target"] = tuple(d["target"])
        d["patch_size"] = tuple(d["patch_size"])
        d["mirror_axes"] = tuple(d.get("mirror_axes", ()))
        d["clip"] = None if d.get("clip") is None else tuple(d["clip"])
        return cls(**d)

    @property
    def num_classes(self) -> int:
        """Output channels including background."""
        return len(self.classes) + 1


def _depth(patch: tuple[int, ...]) -> int:
    return max(2, min(5, min(int(math.log2(max(p, 8) / 4)) for p in patch)))


def _round_up(values: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    return tuple(int(math.ceil(v / multiple) * multiple) for v in values)


def make_plan(
    fp: Fingerprint,
    classes: dict[int, str],
    *,
    network: str = "unet",
    patch_size: tuple[int, ...] | None = None,
    dims: int | None = None,
    width: int = 16,
    mirror: str = "auto",
    full_res: bool = False,
) -> Plan:
    """A :class:`Plan` for data with fingerprint ``fp`` and the given classes.

    ``dims=2`` on volumes plans a slice-wise 2D network: slices across the axis with the
    coarsest spacing, resampled to the median spacing, whole slices as patches.

    ``mirror`` chooses the flipped axes (augmentation and test-time): ``"auto"`` follows the
    rule in the module docstring, ``"all"`` flips every axis of the network's patch (as
    nnU-Net does; the network must then tell classes apart by appearance, not position),
    ``"none"`` never flips.

    ``full_res`` adds a first level that convolves at the input's resolution (stride 1), as
    nnU-Net's networks do. Without it the network's first convolution already halves the
    grid, and the full-resolution output sees the image only through the up-sampling path:
    cheaper (a training step is 4-8x faster on a CPU) but coarser at boundaries.
    """
    if dims is not None and dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, not {dims}")
    if mirror not in MIRROR_CHOICES:
        raise ValueError(f"mirror must be one of {', '.join(MIRROR_CHOICES)}, not {mirror!r}")
    if width < 1:
        raise ValueError(f"width must be at least 1, not {width}")
    if dims == 3 and fp.dims == 2:
        raise ValueError("a 3D network needs volumes; these images are 2D")
    modality = (fp.modality or "").upper() or None
    is_ct = modality == "CT"
    lateral = any(w in name.lower() for name in classes.values() for w in ("left", "right"))
    if fp.dims == 2:
        size = fp.median_size
        scale = min(1.0, _MAX_2D_SIDE / max(size))
        target_size = _round_up(tuple(max(16, int(s * scale)) for s in size), 16)
        depth = _depth(target_size)
        target_size = _round_up(target_size, 2**depth)
        patch = patch_size or tuple(target_size[::-1])
        fit, target = "size", tuple(float(s) for s in target_size)
        flip_axes: tuple[int, ...] = ()
    else:
        spacings = np.array(fp.spacings)
        spacing = np.median(spacings, axis=0)
        if spacing.max() / spacing.min() > 3:  # anisotropic: keep more detail along the coarse axis
            coarse = int(np.argmax(spacing))
            spacing[coarse] = np.percentile(spacings[:, coarse], 10)
        shape_itk = np.median(
            np.array(fp.sizes) * spacings / spacing[None, :], axis=0
        )  # median size after resampling
        shape = tuple(round(s) for s in shape_itk[::-1])
        depth = _depth(shape)
        patch = patch_size or _round_up(shape, 2**depth)
        while int(np.prod(patch)) > _PATCH_VOXELS_3D:
            longest = int(np.argmax(patch))
            patch = tuple(p - 2**depth if k == longest else p for k, p in enumerate(patch))
        fit, target = "spacing", tuple(float(s) for s in spacing)
        lr = fp.lr_axis
        flip_axes = () if lateral or lr is None else (lr,)
    slice_axis = None
    if fp.dims == 3 and dims == 2:
        sp_np = np.asarray(target)[::-1]
        slice_axis = int(np.argmax(sp_np)) if sp_np.max() > sp_np.min() * 1.01 else 0
        in_plane = [int(p) for k, p in enumerate(shape) if k != slice_axis]
        scale = min(1.0, _MAX_2D_SIDE / max(in_plane))
        plane = _round_up(tuple(max(16, int(v * scale)) for v in in_plane), 16)
        plane = _round_up(plane, 2 ** _depth(plane))
        sliced = list(plane)
        sliced.insert(slice_axis, 1)
        patch = tuple(sliced)
        flip_axes = ()
    net_patch = tuple(p for k, p in enumerate(patch) if k != slice_axis)
    if mirror == "all":
        flip_axes = tuple(k for k in range(len(patch)) if k != slice_axis)
    elif mirror == "none":
        flip_axes = ()
    depth = _depth(net_patch)
    levels = depth + 2 if full_res else depth + 1
    channels = [min(width * 2**k, width * 8) for k in range(levels)]
    batch = max(2, min(32, _STEP_VOXELS[len(net_patch)] // int(np.prod(net_patch))))
    strides = ([1] if full_res else []) + [2] * depth
    kwargs: dict[str, Any] = {"channels": channels, "strides": strides}
    if network in DEEPLY_SUPERVISED:
        kwargs["deep_supervision"] = True
    if is_ct:
        clip = (fp.foreground_p005, fp.foreground_p995)
        lo, hi = clip
        mean, std = fp.foreground_mean, max(fp.foreground_std, 1e-3)
        normalization = "ct"
        mean = float(np.clip(mean, lo, hi))
    else:
        clip, mean, std, normalization = None, 0.0, 1.0, "zscore"
    return Plan(
        dims=fp.dims,
        modality=modality,
        classes=dict(classes),
        fit=fit,
        target=target,
        normalization=normalization,
        patch_size=tuple(int(p) for p in patch),
        batch_size=int(batch),
        network={"name": network, "kwargs": kwargs},
        mirror_axes=flip_axes,
        clip=clip,
        mean=float(mean),
        std=float(std),
        slice_axis=slice_axis,
        orientation=ORIENTATION_3D if fp.dims == 3 else None,
    )
