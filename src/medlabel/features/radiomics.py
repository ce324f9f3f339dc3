"""Radiomics features of labelled regions, computed by PyRadiomics (IBSI-aligned definitions).

:func:`extract_radiomics` computes the features of one region of one image;
:func:`extract_many` runs a batch of (id, image, mask) triples and keeps going when an item
fails, recording the reason in the row. Images go to PyRadiomics in memory through
:meth:`MedicalImage.to_sitk`, so the geometry (spacing, origin, direction) is exactly the one
read from the file.

Feature names are PyRadiomics' own, ``<imageType>_<class>_<Feature>``:
``original_firstorder_Mean``, ``original_shape_MeshVolume``, ``log-sigma-1-0-mm-3D_glcm_Contrast``,
``wavelet-LLH_glszm_ZoneEntropy``. Without a ``featureClass`` section in the parameters, every
class of the original image is computed: ``firstorder``, ``shape`` (3D images) or ``shape2D``
(2D images, and 3D images with ``force2D`` whose region is one slice thick), ``glcm``,
``glrlm``, ``glszm``, ``gldm`` and ``ngtdm``.

PyRadiomics' log messages below WARNING are silenced (on the ``radiomics`` logger only), and
so is its per-image notice that Sum Average equals twice Joint Average.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> values = np.zeros((10, 10, 10), np.int16)
    >>> values[3:7, 3:7, 3:7] = 100
    >>> image = MedicalImage(values, spacing=(1.0, 1.0, 1.0))
    >>> mask = image.with_array((values > 0).astype(np.uint8), is_label=True)
    >>> extract_radiomics(image, mask, params={"featureClass": {"firstorder": ["Mean"]}})
    {'original_firstorder_Mean': 100.0}
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from medlabel.errors import MedlabelError
from medlabel.features.params import FeatureError, _quiet_pykwalify, load_params
from medlabel.image import MedicalImage
from medlabel.io import align_mask

__all__ = ["TEXTURE_CLASSES", "extract_many", "extract_radiomics"]

logger = logging.getLogger(__name__)

#: Feature classes computed by default besides the shape class.
TEXTURE_CLASSES: tuple[str, ...] = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

#: A diagnostic value as returned with ``include_diagnostics``: numbers stay numbers, tuples
#: and dicts become their ``str`` (as in PyRadiomics' own CSV output).
DiagnosticValue = float | int | str

#: What ``params`` accepts: a parameter file, a mapping, or ``None`` for the defaults.
ParamsSource = Mapping[str, Any] | str | os.PathLike[str] | None


# ------------------------------------------------------------------------------ PyRadiomics
class _DropSumAverageNotice(logging.Filter):
    """PyRadiomics warns on every image that Sum Average = 2 * Joint Average: not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Sum Average = 2 * Joint Average" not in record.getMessage()


@functools.cache
def _featureextractor() -> Any:
    """PyRadiomics' extractor module, imported on first use with its logging quietened."""
    try:
        import radiomics
        from radiomics import featureextractor
    except ImportError as exc:
        raise FeatureError(
            None,
            "radiomics needs PyRadiomics: pip install numpy setuptools && "
            "pip install --no-build-isolation pyradiomics==3.0.1 (make does this)",
        ) from exc

    radiomics.setVerbosity(logging.WARNING)  # its own stderr handler: warnings and errors only
    logging.getLogger("radiomics").setLevel(logging.WARNING)  # no INFO/DEBUG records at all
    logging.getLogger("radiomics.glcm").addFilter(_DropSumAverageNotice())
    return featureextractor


# ------------------------------------------------------------------------------- the checks
def _labels_text(labels: Sequence[int]) -> str:
    return ", ".join(str(v) for v in labels)


@dataclass(frozen=True)
class _Prepared:
    """An image/mask pair checked once and converted once (for all its labels)."""

    image: MedicalImage
    mask: MedicalImage
    sitk_image: sitk.Image
    sitk_mask: sitk.Image
    labels: tuple[int, ...]


def _prepare(image: MedicalImage, mask: MedicalImage) -> _Prepared:
    """Check that the pair can be measured and convert it to SimpleITK.

    Raises:
        FeatureError: multi-channel image or mask, non-integer mask, empty mask.
        GeometryMismatchError: mask and image grids differ.
    """
    if image.channels:
        raise FeatureError(
            None, f"radiomics needs a single-channel image; this one has {image.channels} channels"
        )
    if mask.channels:
        raise FeatureError(None, f"a mask has one channel; this one has {mask.channels}")
    mask = align_mask(image, mask)  # the same lattice stored flipped: reordered exactly
    values = mask.array
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise FeatureError(None, "mask holds non-integer values; a mask holds integer labels")
    elif values.dtype.kind not in "iub":
        raise FeatureError(None, f"mask of type {values.dtype} cannot hold integer labels")
    labels = tuple(int(v) for v in np.unique(values[values != 0]))
    if not labels:
        raise FeatureError(None, "mask is empty: no voxel carries a label")
    return _Prepared(image, mask, image.to_sitk(), mask.to_sitk(), labels)


def _check_label(label: Any, present: Sequence[int]) -> int:
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise FeatureError(None, f"label must be a positive integer, got {label!r}")
    value = int(label)
    if value <= 0:
        raise FeatureError(None, f"label must be a positive integer (0 is background), got {value}")
    if value not in present:
        raise FeatureError(
            None, f"label {value} is not in the mask; labels present: {_labels_text(present)}"
        )
    return value


def _one_slice(roi: np.ndarray, axis: int) -> bool:
    """Whether the region spans a single index along NumPy ``axis`` (0 = z for 3D)."""
    where = np.nonzero(np.any(roi, axis=tuple(a for a in range(roi.ndim) if a != axis)))[0]
    return where.size == 1


def _as_float(value: Any) -> float:
    arr = np.asarray(value)
    if np.iscomplexobj(arr):  # PyRadiomics returns complex values for degenerate regions
        number = complex(arr.item())
        return (
            number.real if abs(number.imag) <= 1e-12 * max(1.0, abs(number.real)) else float("nan")
        )
    return float(arr.astype(float).item())


def _diagnostic(value: Any) -> DiagnosticValue:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


# -------------------------------------------------------------------------------- extractor
class _Extractor:
    """One configured PyRadiomics extractor, reused for every image of a batch."""

    def __init__(self, params: dict[str, Any]) -> None:
        featureextractor = _featureextractor()
        self.params = params
        # The parameters were checked by load_params; PyRadiomics checks them again (cheap).
        with _quiet_pykwalify():
            self._extractor = (
                featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(params))
                if params
                else featureextractor.RadiomicsFeatureExtractor()
            )
        self._settings = dict(self._extractor.settings)
        classes = params.get("featureClass")
        self._classes: dict[str, Any] | None = copy.deepcopy(classes) if classes else None

    @property
    def label(self) -> int | None:
        """The label fixed by the parameters' ``setting.label``, if any."""
        label = self.params.get("setting", {}).get("label")
        return None if label is None else int(label)

    def _feature_classes(self, ndim: int, roi: np.ndarray, settings: dict[str, Any]) -> Any:
        if self._classes is not None:
            return copy.deepcopy(self._classes)
        names = ["firstorder", "shape2D" if ndim == 2 else "shape", *TEXTURE_CLASSES[1:]]
        axis = int(settings.get("force2Ddimension", 0))
        if ndim == 3 and settings.get("force2D") and _one_slice(roi, axis):
            names.append("shape2D")
        return {name: [] for name in names}

    def run(self, pair: _Prepared, label: int, include_diagnostics: bool) -> dict[str, Any]:
        """Features of one label of a prepared pair (keys sorted, values plain Python)."""
        label = _check_label(label, pair.labels)
        roi = pair.mask.array == label
        inside = pair.image.array[roi]
        if pair.image.dtype.kind in "fc" and not np.all(np.isfinite(inside)):
            bad = int(inside.size - np.count_nonzero(np.isfinite(inside)))
            raise FeatureError(
                None,
                f"image has NaN or infinite values inside label {label} ({bad} of "
                f"{inside.size} voxels); values outside the label are not measured",
            )
        settings = {**self._settings, "label": label, "additionalInfo": include_diagnostics}
        _check_grey_levels(pair.image.array[roi], settings, label)
        if pair.image.ndim == 2:  # 2D input is measured in 2D as is; force2D would drop an axis
            settings.update(force2D=False, force2Ddimension=0)
        self._extractor.settings = settings
        self._extractor.enabledFeatures = self._feature_classes(pair.image.ndim, roi, settings)
        try:
            result = self._extractor.execute(pair.sitk_image, pair.sitk_mask, label=label)
        except (ValueError, RuntimeError, IndexError, AssertionError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise FeatureError(None, f"PyRadiomics cannot measure label {label}: {reason}") from exc
        out: dict[str, Any] = {}
        for key, value in result.items():
            if key.startswith("diagnostics_"):
                if include_diagnostics:
                    out[key] = _diagnostic(value)
            else:
                out[key] = _as_float(value)
        return dict(sorted(out.items()))


#: More grey levels than this makes texture matrices too large to compute (PyRadiomics'
#: C code crashes instead of failing); IBSI advice is 16 to 128 bins.
MAX_GREY_LEVELS = 2000


def _check_grey_levels(values: np.ndarray, settings: dict[str, Any], label: int) -> None:
    """Refuse a fixed bin width that would give an absurd number of grey levels."""
    if settings.get("binCount") or values.size == 0:
        return
    width = float(settings.get("binWidth") or 25)
    levels = (float(values.max()) - float(values.min())) / width
    if levels > MAX_GREY_LEVELS:
        raise FeatureError(
            None,
            f"binWidth {width:g} gives {levels:.0f} grey levels in label {label} (values "
            f"{float(values.min()):g} to {float(values.max()):g}); normalise the image or set "
            "binWidth/binCount in --params",
        )


# ------------------------------------------------------------------------------- public API
@overload
def extract_radiomics(
    image: MedicalImage,
    mask: MedicalImage,
    *,
    label: int | None = None,
    params: ParamsSource = None,
    include_diagnostics: Literal[False] = False,
) -> dict[str, float]: ...


@overload
def extract_radiomics(
    image: MedicalImage,
    mask: MedicalImage,
    *,
    label: int | None = None,
    params: ParamsSource = None,
    include_diagnostics: bool,
) -> dict[str, DiagnosticValue]: ...


def extract_radiomics(
    image: MedicalImage,
    mask: MedicalImage,
    *,
    label: int | None = None,
    params: ParamsSource = None,
    include_diagnostics: bool = False,
) -> dict[str, float] | dict[str, DiagnosticValue]:
    """Radiomics features of one labelled region.

    Args:
        image: a single-channel 2D or 3D image.
        mask: a label map on the same grid (or on its lattice stored with axes flipped:
            :func:`medlabel.io.align_mask`).
        label: the region to measure. Defaults to the parameters' ``setting.label``, else the
            mask's only label; a mask holding several labels needs one of the two.
        params: a PyRadiomics parameter file or mapping (see
            :func:`medlabel.features.load_params`); ``None`` for PyRadiomics' defaults
            (``binWidth`` 25, no resampling, original image only, all feature classes).
        include_diagnostics: also return PyRadiomics' ``diagnostics_*`` entries (versions,
            settings, image and mask summaries); numbers stay numbers, the rest become strings.

    Returns:
        ``{feature name: value}`` with sorted keys and plain Python floats (NaN where
        PyRadiomics could not compute a feature).

    Raises:
        FeatureError: invalid parameters, multi-channel input, empty mask, a label that is not
            in the mask (the message lists those present), non-finite intensities in the
            region, or a region PyRadiomics rejects (e.g. a single voxel).
        GeometryMismatchError: the mask does not lie on the image grid.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> disc = np.zeros((20, 20), np.uint8)
        >>> disc[5:15, 5:15] = 1
        >>> image = MedicalImage(disc * 50.0, spacing=(0.5, 0.5))
        >>> mask = image.with_array(disc, is_label=True)
        >>> features = extract_radiomics(image, mask)
        >>> features["original_shape2D_PixelSurface"], features["original_firstorder_Mean"]
        (25.0, 50.0)
    """
    loaded = load_params(params)
    extractor = _Extractor(loaded)
    pair = _prepare(image, mask)
    if label is None:
        label = extractor.label
    if label is None:
        if len(pair.labels) > 1:
            raise FeatureError(
                None,
                f"mask holds labels {_labels_text(pair.labels)}; choose one with label= "
                "(or setting.label in the parameters)",
            )
        label = pair.labels[0]
    return extractor.run(pair, label, include_diagnostics)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MedlabelError):
        return str(exc)
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def extract_many(
    pairs: Iterable[tuple[str, Any, Any]],
    *,
    label: int | None = None,
    params: ParamsSource = None,
    labels: Literal["all"] | Sequence[int] = "all",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Radiomics features of many images and regions: one row per (image id, label).

    A failing item does not stop the batch: its row holds ``id``, ``label`` and ``error`` (the
    reason in one line) instead of features, and a warning is logged.

    Args:
        pairs: ``(id, image, mask)`` triples; a generator is fine. ``image`` and ``mask`` may
            be zero-argument callables returning the image, so reading happens inside the
            batch's error handling.
        label: measure only this label (shorthand for ``labels=[label]``).
        params: parameter file or mapping, read and checked once for the whole batch.
        labels: ``"all"`` measures every label present in each mask, unless one is fixed by
            ``label`` or by the parameters' ``setting.label``; a list measures those labels
            (a label missing from a mask gives an error row).
        progress: show a tqdm progress bar on stderr.

    Returns:
        Rows in input order: ``{"id", "label", <features>...}`` or ``{"id", "label", "error"}``;
        ``label`` is ``None`` in the one error row of an item whose labels are unknown.

    Raises:
        FeatureError: the parameters are invalid (nothing is extracted).
        ValueError: both ``label`` and a list of ``labels`` were given, or ``labels`` is
            neither ``"all"`` nor a list of integers.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> values = np.zeros((8, 8, 8), np.int16)
        >>> values[2:6, 2:6, 2:6] = 7
        >>> image = MedicalImage(values)
        >>> mask = image.with_array((values > 0).astype(np.uint8), is_label=True)
        >>> empty = image.with_array(np.zeros_like(values, np.uint8), is_label=True)
        >>> rows = extract_many([("a", image, mask), ("b", image, empty)], progress=False,
        ...                     params={"featureClass": {"firstorder": ["Maximum"]}})
        >>> rows[0]
        {'id': 'a', 'label': 1, 'original_firstorder_Maximum': 7.0}
        >>> rows[1]
        {'id': 'b', 'label': None, 'error': 'mask is empty: no voxel carries a label'}
    """
    if isinstance(labels, str):
        if labels != "all":
            raise ValueError(f'labels must be "all" or a list of integers, got {labels!r}')
        wanted: list[int] | None = None
    else:
        if label is not None:
            raise ValueError("give label or labels, not both")
        wanted = [int(v) if isinstance(v, np.integer) else v for v in labels]
    loaded = load_params(params)
    extractor = _Extractor(loaded)
    if label is not None:
        wanted = [int(label) if isinstance(label, np.integer) else label]
    elif wanted is None and extractor.label is not None:
        wanted = [extractor.label]

    rows: list[dict[str, Any]] = []
    for item_id, image, mask in tqdm(pairs, desc="radiomics", unit="image", disable=not progress):
        try:
            # callables load lazily, so a file that cannot be read becomes an error row
            image = image() if callable(image) else image
            mask = mask() if callable(mask) else mask
            pair = _prepare(image, mask)
        except Exception as exc:  # the batch goes on; the row says why
            reason = _reason(exc)
            logger.warning("radiomics: %s: %s", item_id, reason)
            unknown: list[int | None] = [None]
            rows.extend({"id": item_id, "label": lab, "error": reason} for lab in wanted or unknown)
            continue
        for lab in wanted if wanted is not None else pair.labels:
            try:
                features = extractor.run(pair, lab, include_diagnostics=False)
            except Exception as exc:  # the batch goes on; the row says why
                reason = _reason(exc)
                logger.warning("radiomics: %s, label %s: %s", item_id, lab, reason)
                rows.append({"id": item_id, "label": lab, "error": reason})
            else:
                rows.append({"id": item_id, "label": lab, **features})
    return rows
