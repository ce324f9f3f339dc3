"""The models an annotation job runs, behind one interface, and which item each applies to.

A model is a classification bundle, a segmentation bundle, or a classical recipe. Each
declares the dimensionality and the modalities it is made for (bundles: the ``modalities``
of their ``bundle.json``, else their training data's modality; recipes: their registry
entry). :meth:`AnnotationModel.skip_reason` says, in words, why a model does not apply to an
image; ``None`` means it applies. Images of unknown modality (PNG/JPEG exports, NIfTI) are
given to a model that declares modalities only when the user asked for that model by name;
the automatic choice (no ``--model``) applies models only where the modality is known to
fit, except 2D models, which also take untagged 2D exports, and learned 3D models, which
take untagged volumes whose physical size matches their training images (within 1.5x per
axis: a hippocampus crop, not a whole brain).

Every model has an ``id`` (name and a digest of its description) that the manifest records,
so a rerun with a retrained bundle redoes the work.

Example:
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> ct, _ = chest_phantom()
    >>> model = open_model("ct-lungs")
    >>> model.skip_reason(ct) is None, model.kind
    (True, 'segmentation')
    >>> out = model.segment(ct)
    >>> sorted(out.sizes), out.unit
    (['lung_left', 'lung_right'], 'mL')
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlabel.annotate.uncertainty import classification_uncertainty
from medlabel.image import MedicalImage
from medlabel.models import resolve_model
from medlabel.segment.labelmap import label_sizes
from medlabel.segment.plausibility import extent_fits, physical_extent

__all__ = [
    "SIZE_KEYS",
    "AnnotationModel",
    "Classification",
    "Segmentation",
    "effective_modality",
    "model_version",
    "open_model",
]

#: Classical recipes the automatic choice adds to the bundled models.
DEFAULT_RECIPES = ("ct-lungs", "ct-bone")


@dataclass
class Classification:
    """One classification result."""

    label: str
    confidence: float
    uncertainty: float
    probs: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


#: Manifest key of a segmentation's class sizes, by unit.
SIZE_KEYS = {"mL": "volumes_ml", "cm2": "areas_cm2", "voxels": "volumes_voxels", "px": "areas_px"}


@dataclass
class Segmentation:
    """One segmentation result: the label map on the input grid and its figures.

    ``sizes`` holds each class's volume in mL (volumes) or area in cm2 (2D images), as
    ``unit`` says; in ``voxels`` or ``px`` when the image gave no pixel size.
    """

    mask: MedicalImage
    classes: dict[int, str]
    sizes: dict[str, float]
    unit: str
    uncertainty: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Names of the classes present, ``|``-joined (``""`` when nothing was found)."""
        return "|".join(n for n, v in self.sizes.items() if v > 0)


def effective_modality(image: MedicalImage) -> str:
    """The image's modality code; for untagged images (NIfTI, NRRD, a DICOM file without its
    Modality attribute) ``CT`` when the values look like Hounsfield units (air near -1000,
    whole numbers, dense tissue above 100), else ``""``.

    Values below -1100 HU are left out first: scanners fill the corners outside the field of
    view with -2048 or -3024, and no unsigned export (PNG, JPEG) holds negative values. So are
    NaN and infinite values, so that a CT holding some is still a CT, which the CT recipes then
    refuse with the count of such pixels.

    Example:
        >>> import numpy as np
        >>> from medlabel.image import MedicalImage
        >>> ct = np.full((4, 8, 8), -1000.0); ct[:, 2:6, 2:6] = 300
        >>> effective_modality(MedicalImage(ct)), effective_modality(MedicalImage(ct / 1000))
        ('CT', '')
        >>> one_slice = ct[:1].copy(); one_slice[0, 0, :3] = -2048  # padded field of view
        >>> effective_modality(MedicalImage(one_slice))
        'CT'
    """
    if image.modality:
        return image.modality.upper()
    a = np.asarray(image.array)
    if image.channels or a.size < 16:
        return ""
    sample = a.ravel()[:: max(1, a.size // 200_000)].astype(np.float64)
    sample = sample[np.isfinite(sample)]  # NaN left for the model to refuse, counted
    if np.any(sample != np.round(sample)):
        return ""
    sample = sample[sample >= -1100]
    if sample.size < 16:
        return ""
    lo, hi = np.percentile(sample, [1, 99.5])
    return "CT" if -1100 <= lo <= -900 and hi >= 100 else ""


def _similar_extent(image: MedicalImage, extent_mm: tuple[float, ...]) -> bool:
    """Whether the image's physical size matches ``extent_mm`` within the plausibility
    check's factor per axis (axes compared sorted, so the storage order does not matter)."""
    return extent_fits(
        physical_extent(image.size, image.spacing), [(r, r) for r in sorted(extent_mm)]
    )


def _digest(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def model_version(name_or_path: str | os.PathLike[str]) -> str:
    """The version recorded for a model's outputs: a digest of its bundle description, or
    ``medlabel-<version>`` for a recipe.

    Example:
        >>> model_version("ct-lungs").startswith("medlabel-"), len(model_version("cxr-lungs"))
        (True, 10)
    """
    from medlabel.segment.recipes import RECIPES

    if str(name_or_path) in RECIPES:
        from medlabel import __version__

        return f"medlabel-{__version__}"
    meta_path = resolve_model(name_or_path) / "bundle.json"
    return _digest(json.loads(meta_path.read_text()) if meta_path.is_file() else {})


@dataclass
class AnnotationModel:
    """A loaded model with what it applies to.

    Attributes:
        name: model name (bundle or recipe name).
        kind: ``classification`` or ``segmentation``.
        dims: spatial dimensionality of its input (2D models take 1-slice volumes too, and
            so do 3D recipes, as ``medlabel segment`` runs them: a single CT slice).
        modalities: DICOM modality codes it is made for (``()``: any).
        version: digest of the bundle description (recipes: the medlabel version).
        explicit: chosen by the user by name (then untagged images are accepted).
    """

    name: str
    kind: str
    dims: int
    modalities: tuple[str, ...]
    version: str
    explicit: bool = True
    impl: Any = field(default=None, repr=False)
    extent_mm: tuple[float, ...] | None = None

    @property
    def id(self) -> str:
        """``name@version``, recorded in the manifest."""
        return f"{self.name}@{self.version}"

    @property
    def is_recipe(self) -> bool:
        """Whether it is a classical recipe (not a trained bundle)."""
        return getattr(self.impl, "recipe", None) is not None

    @property
    def classes(self) -> list[str]:
        """Class names of its output."""
        if self.kind == "classification":
            return list(self.impl.class_names)
        return list(self.impl.classes.values())

    def skip_reason(self, image: MedicalImage, modality: str | None = None) -> str | None:
        """Why this model does not apply to ``image`` (``None``: it applies).

        ``modality`` is the image's :func:`effective_modality` when the caller has it already.
        """
        depth = image.array.shape[0] if image.ndim == 3 else 1
        image_dims = 2 if image.ndim == 2 or depth == 1 else 3
        # a one-slice volume (a CT slice keeps its place in space) is 2D to 2D models, and a
        # volume to the 3D recipes, which run on it as on any volume (as medlabel segment does)
        one_slice_volume = image.ndim == 3 and depth == 1 and not image.channels
        if image_dims != self.dims and not (one_slice_volume and self.is_recipe):
            return f"{self.name} takes {self.dims}D images; this is {image_dims}D"
        modality = effective_modality(image) if modality is None else modality
        if self.modalities and modality and modality not in self.modalities:
            return f"{self.name} is made for {'/'.join(self.modalities)}; this is {modality}"
        if self.modalities and not modality and not self.explicit and self.dims == 3:
            if self.extent_mm is not None and _similar_extent(image, self.extent_mm):
                return None  # an untagged crop like the ones the model was trained on
            return f"modality unknown; {self.name} is made for {'/'.join(self.modalities)}"
        return None

    def classify(self, images: list[MedicalImage], *, tta: bool = False) -> list[Classification]:
        """Calibrated labels for a batch of images (one network pass per batch)."""
        from medlabel.classify.resolution import describe_size
        from medlabel.preprocess.network import native_size

        bundle = self.impl
        probs, distance = bundle.predict_with_ood(
            np.stack([bundle.prepare(im) for im in images]), tta=tta
        )
        sizes = [native_size(im, bundle.spec) for im in images]
        small, record = bundle.low_resolution(np.array(sizes)), bundle.training_sizes
        decided = bundle.decide(probs)
        multilabel = bundle.task == "multilabel"
        threshold = bundle.threshold if bundle.task == "binary" else None
        out = []
        for k in range(len(images)):
            p = probs[k]
            figures = classification_uncertainty(p, multilabel=multilabel, threshold=threshold)
            if multilabel:
                label = "|".join(
                    c for c, v in zip(bundle.class_names, decided[k], strict=True) if v
                )
                confidence = float(np.mean(np.where(decided[k] > 0, p, 1 - p)))
            else:
                label = bundle.class_names[int(decided[k])]
                confidence = float(p[int(decided[k])])
            extra: dict[str, Any] = {"margin": figures["margin"]}
            uncertainty = figures["entropy"]
            if threshold is not None and not multilabel and confidence < 0.5:
                # the validation-chosen threshold overrules the more probable class: the
                # calibrated confidence stays what it is, and the note says why it is low
                positive = bundle.class_names[1]
                extra["notes"] = [
                    f"labelled {label} by the threshold chosen on validation ({positive} from "
                    f"p_{positive} {threshold:.3f}; here {p[1]:.3f})"
                ]
            if distance is not None:
                # out of the training distribution: the calibrated probabilities say nothing,
                # so the result is as uncertain as it gets (and first in the review queue)
                ood = bool(distance[k] > bundle.ood_check.threshold)
                extra.update(ood=ood, ood_distance=round(float(distance[k]), 3))
                if ood:
                    uncertainty = 1.0
                    extra.setdefault("notes", []).append(
                        f"out of distribution: deep-feature distance {distance[k]:.1f} > "
                        f"{bundle.ood_check.threshold:.1f}, so the label is not meaningful"
                    )
            if small is not None and record is not None and small[k]:
                # less detail than any training image: worth a note, not a meaningless label
                extra["low_resolution"] = True
                extra.setdefault("notes", []).append(
                    f"low resolution: {describe_size(sizes[k])} pixels, smaller than every "
                    f"training image ({describe_size(record['min'])}), so less reliable"
                )
            out.append(
                Classification(
                    label=label,
                    confidence=confidence,
                    uncertainty=uncertainty,
                    probs={c: float(v) for c, v in zip(bundle.class_names, p, strict=True)},
                    extra=extra,
                )
            )
        return out

    def segment(self, image: MedicalImage, *, tta: bool = False) -> Segmentation:
        """Label map on ``image``'s grid, structure volumes, and (bundles) uncertainty."""
        return self.segment_many([image], tta=tta)[0]

    def segment_many(self, images: list[MedicalImage], *, tta: bool = False) -> list[Segmentation]:
        """:meth:`segment` for several images (2D bundles run them as one batch)."""
        if self.impl.recipe is not None:
            return [self._segmentation(im, self.impl.segment(im), None) for im in images]
        results = self.impl.bundle.predict_detailed_many(images, tta=tta)
        return [self._segmentation(im, m, st) for im, (m, st) in zip(images, results, strict=True)]

    def _segmentation(
        self, image: MedicalImage, mask: MedicalImage, stats: dict[str, Any] | None
    ) -> Segmentation:
        extra: dict[str, Any] = {}
        uncertainty = None
        if stats is not None:
            extra["inference"] = self.impl.bundle.arithmetic  # bfloat16 or float32
            uncertainty = stats["entropy"]["all"]
            extra["entropy_per_class"] = {
                self.impl.classes[int(c)]: v for c, v in stats["entropy"].items() if c != "all"
            }
            if "agreement" in stats:
                extra["tta_agreement"] = stats["agreement"]
            if stats.get("implausible"):
                # unlike anything in training: the mask says nothing, so it is as uncertain
                # as it gets (and first in the review queue), as for classification
                extra.update(ood=True, notes=list(stats["implausible"]))
                uncertainty = 1.0
            if stats.get("notes"):
                # less detail than any training image: a note, not a meaningless mask
                extra["low_resolution"] = True
                extra["notes"] = [*extra.get("notes", []), *stats["notes"]]
        by_value, unit = label_sizes(mask, known=image.spacing_known and mask.spacing_known)
        classes = dict(self.impl.classes)
        sizes = {n: by_value.get(v, 0.0) for v, n in classes.items()}
        return Segmentation(mask, classes, sizes, unit, uncertainty, extra)


def open_model(
    name_or_path: str | os.PathLike[str],
    *,
    explicit: bool = True,
    device: str = "cpu",
    precision: str = "auto",
) -> AnnotationModel:
    """A recipe name, a bundled or user model name, or a bundle folder; a segmentation bundle
    runs on ``device`` at ``precision`` (see
    :func:`~medlabel.segment.bundle.load_segmentation_bundle`; classifiers and recipes on the
    CPU, in float32).

    Raises:
        BundleError: not a recipe and not a readable bundle.
    """
    from medlabel.segment.recipes import RECIPES

    name = str(name_or_path)
    version = model_version(name_or_path)
    if name in RECIPES:
        from medlabel.segment.api import Segmenter

        r = RECIPES[name]
        return AnnotationModel(
            name,
            "segmentation",
            r.dims,
            tuple(r.modalities),
            version,
            explicit,
            Segmenter(name=name, recipe=name),
        )
    path = resolve_model(name_or_path)
    meta_path = path / "bundle.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    declared = tuple(m.upper() for m in (meta.get("modalities") or []))
    if meta.get("kind") == "segmentation":
        from medlabel.segment.api import Segmenter
        from medlabel.segment.bundle import load_segmentation_bundle

        bundle = load_segmentation_bundle(path, device=device, precision=precision)
        fp = meta.get("fingerprint") or {}
        extent = None
        if fp.get("median_size") and fp.get("median_spacing"):
            extent = tuple(
                float(n) * float(s)
                for n, s in zip(fp["median_size"], fp["median_spacing"], strict=False)
            )
        return AnnotationModel(
            bundle.name,
            "segmentation",
            int(bundle.plan.dims),
            declared or ((bundle.plan.modality.upper(),) if bundle.plan.modality else ()),
            version,
            explicit,
            Segmenter(name=bundle.name, bundle=bundle),
            extent,
        )
    from medlabel.classify.bundle import load_bundle

    cbundle = load_bundle(path)
    return AnnotationModel(
        cbundle.name, "classification", cbundle.spec.dims, declared, version, explicit, cbundle
    )
