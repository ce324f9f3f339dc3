"""Display windowing (level/width) of CT intensities, with the usual named presets.

A window maps ``[level - width / 2, level + width / 2]`` linearly onto ``[0, 1]`` and clips
everything outside, the way a radiologist's viewer shows Hounsfield units.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> ct = MedicalImage(np.array([[-1000, 40, 240]], np.int16), spacing=(1, 1), modality="CT")
    >>> window(ct, "mediastinum").array.tolist()
    [[0.0, 0.5, 1.0]]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from medlabel.errors import PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess._common import require_intensity

__all__ = ["WINDOW_PRESETS", "window"]

#: Named CT windows as ``(level, width)`` in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "soft-tissue": (40.0, 400.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 150.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
}


def _preset(name: str) -> tuple[float, float]:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in WINDOW_PRESETS:
        valid = ", ".join(sorted(WINDOW_PRESETS))
        raise PreprocessError(None, f"unknown window preset {name!r}; valid presets: {valid}")
    return WINDOW_PRESETS[key]


def window(
    image: MedicalImage,
    preset: str | None = None,
    *,
    level: float | None = None,
    width: float | None = None,
    output: Literal["float", "uint8"] = "float",
) -> MedicalImage:
    """Apply a display window.

    Args:
        image: intensity image (CT in Hounsfield units for the presets). Multi-channel
            images are windowed element by element.
        preset: name from :data:`WINDOW_PRESETS` (case-insensitive; ``_`` and ``-`` alike).
        level: window centre; overrides the preset's level when both are given.
        width: window width (> 0); overrides the preset's width when both are given.
        output: ``"float"`` for float32 in ``[0, 1]``, ``"uint8"`` for ``0..255``.

    Returns:
        The windowed image on the same grid.

    Raises:
        PreprocessError: unknown preset, missing or invalid level/width, unknown output,
            or a label image.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> img = MedicalImage(np.array([[0.0, 50.0, 100.0]]), spacing=(1, 1))
        >>> window(img, level=50, width=100, output="uint8").array.tolist()
        [[0, 128, 255]]
    """
    require_intensity(image, "window")
    lvl, wid = _preset(preset) if preset is not None else (None, None)
    if level is not None:
        lvl = float(level)
    if width is not None:
        wid = float(width)
    if lvl is None or wid is None:
        raise PreprocessError(None, "window needs a preset or both level and width")
    if not (np.isfinite(lvl) and np.isfinite(wid)) or wid <= 0:
        raise PreprocessError(None, f"window width must be positive, got level={lvl} width={wid}")
    if output not in ("float", "uint8"):
        raise PreprocessError(None, f"window output must be 'float' or 'uint8', got {output!r}")
    low = lvl - wid / 2.0
    # in place, in float32 for float output (one temporary array); float64 for uint8 so that
    # values on a rounding boundary round as written
    work = np.dtype(np.float64 if output == "uint8" else np.float32)
    scaled: np.ndarray = image.array.astype(work)
    np.subtract(scaled, low, out=scaled, dtype=work)
    np.divide(scaled, wid, out=scaled, dtype=work)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    if output == "uint8":
        scaled = np.nan_to_num(scaled, nan=0.0)  # NaN has no display value: show it black
        return image.with_array(np.rint(scaled * 255.0).astype(np.uint8))
    return image.with_array(scaled)
