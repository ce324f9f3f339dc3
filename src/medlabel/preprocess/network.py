"""Turning any image into the fixed-size ``uint8`` array a classification network takes.

The same function prepares training data and inference inputs, so a model sees its inputs
exactly as it saw them in training: colour to grey (or grey to three channels), 16-bit and
float images scaled to 0..255 between their 0.5 and 99.5 percentiles (8-bit images are kept
as they are), then resized to the network size with antialiasing.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> xray = MedicalImage(np.arange(300 * 200, dtype=np.uint16).reshape(300, 200))
    >>> arr = network_input(xray, InputSpec(size=(64, 64), channels=1))
    >>> arr.shape, arr.dtype.name
    ((1, 64, 64), 'uint8')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage

__all__ = ["InputSpec", "native_size", "network_input", "nonfinite_reason", "to_uint8"]


@dataclass(frozen=True)
class InputSpec:
    """What a network takes: spatial size (``(H, W)`` or ``(D, H, W)``) and channels."""

    size: tuple[int, ...]
    channels: int = 1

    @property
    def dims(self) -> int:
        """2 or 3 spatial dimensions."""
        return len(self.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in model bundles)."""
        return {"size": list(self.size), "channels": self.channels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(size=tuple(int(s) for s in data["size"]), channels=int(data["channels"]))

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if self.dims not in (2, 3) or any(s < 1 for s in self.size):
            raise PreprocessError(None, f"network input size must be 2D or 3D, got {self.size}")
        if self.channels not in (1, 3):
            raise PreprocessError(None, f"network input needs 1 or 3 channels, got {self.channels}")

    def describe(self) -> str:
        """E.g. ``1x64x64``."""
        return "x".join(str(v) for v in (self.channels, *self.size))


def nonfinite_reason(values: np.ndarray) -> str | None:
    """Why ``values`` cannot go into a network (NaN or infinite entries, counted), or ``None``.

    Example:
        >>> nonfinite_reason(np.array([1.0, np.nan, np.inf, 2.0]))
        'the image holds NaN or infinite values (2 of 4 pixels)'
    """
    finite = np.isfinite(values)
    if finite.all():
        return None
    bad = int(finite.size - np.count_nonzero(finite))
    return f"the image holds NaN or infinite values ({bad} of {finite.size} pixels)"


def to_uint8(array: np.ndarray) -> np.ndarray:
    """8-bit images unchanged; others scaled between their 0.5 and 99.5 percentiles.

    Raises:
        PreprocessError: the image holds NaN or infinite values. What they stand for (outside
            the field of view, a failed reconstruction) is not medlabel's to guess, and
            segmentation and radiomics refuse them too.
    """
    if array.dtype == np.uint8:
        return array
    data = array.astype(np.float32)
    reason = nonfinite_reason(data)
    if reason:
        raise PreprocessError(None, reason)
    lo, hi = np.percentile(data, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(data.min()), float(data.max()) if data.max() > data.min() else lo + 1
    scaled = (data - lo) / (hi - lo)
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def luminance(array: np.ndarray) -> np.ndarray:
    """Grey values (float32, ITU-R BT.601 weights) of an RGB or RGBA array (channels last)."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(array[..., :3].astype(np.float32) @ weights)


def _grey(array: np.ndarray) -> np.ndarray:
    out = luminance(array)
    return out.astype(array.dtype) if array.dtype == np.uint8 else out


def _resize_2d(plane: np.ndarray, size: Sequence[int]) -> np.ndarray:
    if plane.shape == tuple(size):
        return plane
    pil = Image.fromarray(plane)
    return np.asarray(pil.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0))


def native_size(image: MedicalImage, spec: InputSpec) -> tuple[int, ...]:
    """The spatial size (array order) that :func:`network_input` resizes from: rows and
    columns of a 2D image (or of a one-slice volume given to a 2D network), else slices, rows
    and columns.

    Example:
        >>> from medlabel.image import MedicalImage
        >>> photo = MedicalImage(np.zeros((30, 40, 3), np.uint8), spacing=(1.0, 1.0))
        >>> native_size(photo, InputSpec(size=(64, 64)))
        (30, 40)
    """
    shape = tuple(int(s) for s in np.shape(image.array))
    spatial = shape[:-1] if image.channels else shape
    if spec.dims == 2 and len(spatial) == 3:
        spatial = spatial[1:]
    return spatial


def network_input(image: MedicalImage, spec: InputSpec) -> np.ndarray:
    """``uint8`` array ``(C, H, W)`` (or ``(C, D, H, W)``) for the network described by ``spec``.

    Raises:
        PreprocessError: a volume for a 2D network (more than one slice), a 2D image for a 3D
            network, or an image with no finite values.
    """
    arr = np.asarray(image.array)
    if image.channels:
        arr = _grey(arr) if spec.channels == 1 or image.channels not in (3, 4) else arr[..., :3]
        channels_in = 1 if spec.channels == 1 or image.channels not in (3, 4) else 3
    else:
        channels_in = 1
    spatial = arr if channels_in == 1 else np.moveaxis(arr, -1, 0)
    if spec.dims == 2:
        if image.ndim == 3:
            depth = spatial.shape[-3]
            if depth != 1:
                raise PreprocessError(
                    None, f"a 2D model takes single images; this is a volume of {depth} slices"
                )
            spatial = spatial[..., 0, :, :]
    elif image.ndim != 3:
        raise PreprocessError(None, "a 3D model needs a volume; this image is 2D")
    spatial = to_uint8(spatial)
    planes = spatial[None] if channels_in == 1 else spatial
    if spec.dims == 2:
        out = np.stack([_resize_2d(p, spec.size) for p in planes])
    else:
        out = np.stack(
            [
                p
                if p.shape == spec.size
                else np.clip(
                    ndimage.zoom(
                        p.astype(np.float32),
                        [t / s for t, s in zip(spec.size, p.shape, strict=True)],
                        order=1,
                        grid_mode=True,
                        mode="nearest",
                    ),
                    0,
                    255,
                )
                .round()
                .astype(np.uint8)
                for p in planes
            ]
        )
    if out.shape[0] != spec.channels:
        out = np.repeat(out, spec.channels, axis=0)
    return np.ascontiguousarray(out)
