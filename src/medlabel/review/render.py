"""Server-side pictures for the review viewer: slices with window/level, mask overlays, and
mask edits written back as new versions on the image's own grid.

Volumes are shown as axial slices in the radiological convention (patient right on the
screen's left, anterior at the top): the image and its masks are reoriented to LPS for
display, and an edited slice is mapped back to the stored orientation before it is saved.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> view = View(MedicalImage(np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)))
    >>> view.slices, view.slice_png(1, level=24.0, width=16.0)[:4]
    (2, b'\\x89PNG')
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medlabel.image import MedicalImage
from medlabel.io import write_image
from medlabel.preprocess.orient import orientation_code, reorient
from medlabel.visualize.preview import LABEL_COLOURS

__all__ = ["View", "decode_rle", "encode_rle"]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_rle(values: np.ndarray) -> list[int]:
    """Run-length code of a flat integer array: ``[value, count, value, count, ...]``.

    Example:
        >>> encode_rle(np.array([0, 0, 2, 2, 2, 0]))
        [0, 2, 2, 3, 0, 1]
    """
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    return [int(v) for pair in zip(flat[starts], counts, strict=True) for v in pair]


def decode_rle(code: list[int], size: int) -> np.ndarray:
    """Inverse of :func:`encode_rle`.

    Raises:
        ValueError: the runs do not add up to ``size``, or a negative count.

    Example:
        >>> decode_rle([0, 2, 2, 3, 0, 1], 6).tolist()
        [0, 0, 2, 2, 2, 0]
    """
    if len(code) % 2:
        raise ValueError("run-length code has an odd number of entries")
    values, counts = np.asarray(code[0::2], np.int64), np.asarray(code[1::2], np.int64)
    if (counts < 0).any() or int(counts.sum()) != size:
        raise ValueError(f"run-length code covers {int(counts.sum())} pixels, not {size}")
    return np.repeat(values, counts)


@dataclass
class View:
    """An image (and its masks) prepared for display."""

    image: MedicalImage
    display: MedicalImage = field(init=False)
    code: str = field(init=False)

    def __post_init__(self) -> None:
        img = self.image
        if img.channels:
            img = img.with_array(np.asarray(img.array, np.float32).mean(axis=-1))
        self.code = orientation_code(img) if img.ndim == 3 else ""
        self.display = reorient(img, "LPS") if img.ndim == 3 else img

    @property
    def slices(self) -> int:
        """Number of axial slices (1 for 2D images)."""
        return int(self.display.array.shape[0]) if self.display.ndim == 3 else 1

    @property
    def aspect(self) -> float:
        """Pixel height / width in mm, for drawing slices undistorted."""
        sx, sy = self.display.spacing[0], self.display.spacing[1]
        return float(sy / sx) if sx else 1.0

    def _plane(self, array: np.ndarray, index: int) -> np.ndarray:
        if array.ndim == 2:
            return array
        return array[int(np.clip(index, 0, array.shape[0] - 1))]

    def default_window(self) -> tuple[float, float]:
        """Level and width: CT soft tissue for Hounsfield data, else the 1-99 % range."""
        a = np.asarray(self.display.array, np.float64)
        if (self.image.modality or "").upper() == "CT":
            return 40.0, 400.0
        lo, hi = np.percentile(a[:: max(1, a.shape[0] // 8)] if a.ndim == 3 else a, [1, 99])
        return float((lo + hi) / 2), float(max(hi - lo, 1e-6))

    def slice_png(self, index: int, level: float, width: float) -> bytes:
        """Grey PNG of axial slice ``index`` at window ``level``/``width``."""
        plane = self._plane(np.asarray(self.display.array), index).astype(np.float64)
        lo = level - width / 2
        grey = np.clip((plane - lo) / max(width, 1e-6), 0, 1) * 255
        return _png(grey.astype(np.uint8))

    def mask_display(self, mask: MedicalImage) -> np.ndarray:
        """A mask on this image's grid, in display orientation."""
        if mask.ndim == 3 and mask.array.shape[0] == 1 and self.image.ndim == 2:
            mask = mask.with_array(mask.array[0])  # a 2D image's mask stored as one slice
            mask = MedicalImage(
                mask.array,
                spacing=self.image.spacing,
                origin=self.image.origin,
                direction=self.image.direction,
                is_label=True,
            )
        shown = reorient(mask, "LPS") if mask.ndim == 3 else mask
        return np.asarray(shown.array)

    def overlay_png(self, labels: np.ndarray, index: int, alpha: int = 255) -> bytes:
        """RGBA PNG of one slice of display-oriented ``labels`` in the class colours."""
        plane = self._plane(labels, index).astype(np.int64)
        rgba = np.zeros((*plane.shape, 4), np.uint8)
        for value in np.unique(plane):
            if value == 0:
                continue
            colour = LABEL_COLOURS[(int(value) - 1) % len(LABEL_COLOURS)]
            rgba[plane == value] = (*colour, alpha)
        return _png(rgba)

    def save_edit(
        self,
        labels: np.ndarray,
        index: int,
        plane: np.ndarray,
        target: str | os.PathLike[str],
        classes: dict[int, str],
    ) -> Path:
        """Replace slice ``index`` of the display-oriented ``labels`` by ``plane`` and write
        the whole mask, back in the image's stored orientation and grid, to ``target``."""
        edited = np.array(labels, copy=True)
        if edited.ndim == 2:
            edited = plane.astype(edited.dtype).reshape(edited.shape)
        else:
            edited[int(index)] = plane.astype(edited.dtype).reshape(edited.shape[1:])
        base = self.display.with_array(edited, is_label=True)
        if self.image.ndim == 3:
            base = reorient(base, self.code)
        out = base.with_array(base.array.astype(np.uint8), metadata={"labels": classes})
        write_image(out, target)
        return Path(target)
