"""Helpers shared by the preprocessing modules (private: not part of the public API).

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> img = MedicalImage(np.arange(6, dtype=np.int16).reshape(2, 3))
    >>> map_channels(img, lambda a: a * 2.0).array.tolist()
    [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from medlabel.errors import GeometryMismatchError, PreprocessError
from medlabel.image import MedicalImage, same_grid

__all__ = [
    "as_mask_array",
    "available_memory",
    "check_output_memory",
    "from_sitk_like",
    "map_channel_images",
    "map_channels",
    "per_axis",
    "require_intensity",
    "require_scalar",
]


def require_intensity(image: MedicalImage, op: str) -> None:
    """Raise :class:`PreprocessError` when an intensity operation is asked of a label image."""
    if image.is_label:
        raise PreprocessError(
            None, f"{op} changes intensities and cannot be applied to a label image"
        )


def require_scalar(image: MedicalImage, op: str) -> None:
    """Raise :class:`PreprocessError` for multi-channel images where per-channel makes no sense."""
    if image.channels:
        raise PreprocessError(
            None,
            f"{op} needs a single-channel image, got {image.channels} channels; "
            "convert to grayscale first",
        )


def map_channels(image: MedicalImage, fn: Callable[[np.ndarray], np.ndarray]) -> MedicalImage:
    """Apply ``fn`` to the spatial array of each channel and stack the results.

    ``fn`` receives a read-only view and must return a new array of the same spatial shape.
    """
    arr = image.array
    if not image.channels:
        view = arr.view()
        view.flags.writeable = False
        return image.with_array(np.asarray(fn(view)))
    outs = []
    for c in range(image.channels):
        view = arr[..., c]
        view.flags.writeable = False
        outs.append(np.asarray(fn(view)))
    return image.with_array(np.stack(outs, axis=-1))


def map_channel_images(
    image: MedicalImage, fn: Callable[[MedicalImage], MedicalImage]
) -> MedicalImage:
    """Apply an image-to-image ``fn`` channel by channel (for SimpleITK scalar-only filters).

    The geometry of the result is taken from ``fn``'s output (so it may change, e.g. when
    resampling); the channels are stacked on a trailing axis again.
    """
    if not image.channels:
        return fn(image)
    parts = [fn(image.with_array(image.array[..., c])) for c in range(image.channels)]
    first = parts[0]
    return first.with_array(np.stack([p.array for p in parts], axis=-1))


def from_sitk_like(result: sitk.Image, like: MedicalImage, **changes: Any) -> MedicalImage:
    """Wrap a SimpleITK result, keeping ``like``'s modality, metadata and label flag."""
    return like.with_array(
        sitk.GetArrayFromImage(result),
        spacing=tuple(result.GetSpacing()),
        origin=tuple(result.GetOrigin()),
        direction=tuple(result.GetDirection()),
        **changes,
    )


def as_mask_array(image: MedicalImage, mask: MedicalImage | np.ndarray, op: str) -> np.ndarray:
    """Boolean spatial mask (``mask > 0``) checked against ``image``'s grid.

    A :class:`MedicalImage` mask must share the image's grid (size, spacing, origin,
    direction); a plain array must have the image's spatial array shape.
    """
    if isinstance(mask, MedicalImage):
        if not same_grid(image, mask):
            raise GeometryMismatchError(
                None,
                f"{op}: mask grid (size {mask.size}, spacing {mask.spacing}, origin "
                f"{mask.origin}) differs from the image's (size {image.size}, spacing "
                f"{image.spacing}, origin {image.origin}); resample the mask first",
            )
        m = np.asarray(mask.array)
        if mask.channels:
            m = np.any(m != 0, axis=-1)
    else:
        m = np.asarray(mask)
    spatial = image.array.shape[: image.ndim]
    if m.shape != spatial:
        raise PreprocessError(
            None, f"{op}: mask shape {m.shape} differs from image array shape {spatial}"
        )
    return m > 0


def per_axis(value: float | Sequence[float], ndim: int, name: str) -> tuple[float, ...]:
    """Expand a scalar to ``ndim`` values or check a sequence has ``ndim`` values."""
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (float(value),) * ndim
    out = tuple(float(v) for v in value)
    if len(out) != ndim:
        raise PreprocessError(None, f"{name} needs {ndim} values (ITK order x, y[, z]), got {out}")
    return out


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (Linux), else ``None``."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), else ``None``."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory this process can still use: the smaller of the system's available
    memory (``/proc/meminfo``, else ``os.sysconf``) and a container's limit; ``None`` when
    unknown.

    Example:
        >>> free = available_memory()
        >>> free is None or free > 0
        True
    """
    candidates = [_meminfo_available(), _cgroup_available()]
    if candidates[0] is None:
        try:
            candidates[0] = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            candidates[0] = None
    known = [c for c in candidates if c is not None and c > 0]
    return min(known) if known else None


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def check_output_memory(
    op: str,
    size: Sequence[int],
    bytes_per_voxel: float,
    available: int | None = None,
) -> None:
    """Refuse an operation whose output would not fit in memory, before it is attempted.

    Args:
        op: what is being done, for the message (e.g. ``"resample to spacing (1, 1, 1)"``).
        size: output size in ITK order.
        bytes_per_voxel: peak bytes the operation needs per output voxel (all channels and
            temporary copies included).
        available: bytes available; ``None`` asks :func:`available_memory`.

    Raises:
        PreprocessError: the estimate exceeds the available memory (the message gives the
            output size, the estimate and what is available).

    Example:
        >>> check_output_memory("resize", (512, 512), 8, available=10**9)
        >>> try:
        ...     check_output_memory("resize", (10**5, 10**5, 10**3), 8, available=10**9)
        ... except PreprocessError as err:
        ...     print(err.reason)  # doctest: +NORMALIZE_WHITESPACE
        resize would make a 100000 x 100000 x 1000 image (1e+13 voxels) needing about
        72.8 TB of memory; only 953.7 MB is available
    """
    voxels = float(np.prod([float(s) for s in size]))
    needed = voxels * float(bytes_per_voxel)
    free = available_memory() if available is None else available
    if free is None or needed <= free:
        return
    shape = " x ".join(str(int(s)) for s in size)
    raise PreprocessError(
        None,
        f"{op} would make a {shape} image ({voxels:.3g} voxels) needing about "
        f"{_human_bytes(needed)} of memory; only {_human_bytes(free)} is available",
    )
