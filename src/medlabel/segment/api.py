"""One entry point for every segmenter: a recipe name, a bundled model name or a bundle path.

Example:
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> ct, _ = chest_phantom()
    >>> seg = open_segmenter("ct-lungs").segment(ct)
    >>> seg.metadata["labels"]
    {1: 'lung_right', 2: 'lung_left'}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from medlabel.image import MedicalImage
from medlabel.segment.recipes import RECIPES, run_recipe

__all__ = ["Segmenter", "open_segmenter"]


@dataclass
class Segmenter:
    """A recipe or a loaded segmentation bundle behind one interface."""

    name: str
    recipe: str | None = None
    bundle: Any = None

    @property
    def classes(self) -> dict[int, str]:
        """Label value -> class name of the output."""
        if self.recipe is not None:
            return dict(RECIPES[self.recipe].labels)
        return dict(self.bundle.classes)

    @property
    def dims(self) -> int:
        """Spatial dimensionality of the input it takes."""
        return RECIPES[self.recipe].dims if self.recipe is not None else int(self.bundle.plan.dims)

    def training_data(self) -> dict[str, Any] | None:
        """What a bundle was trained on (``None`` for recipes)."""
        return None if self.bundle is None else dict(self.bundle.meta.get("data", {}))

    def segment(self, image: MedicalImage, *, tta: bool = False) -> MedicalImage:
        """Label map of ``image`` on its own grid."""
        if self.recipe is not None:
            return run_recipe(self.recipe, image)
        return self.bundle.predict(image, tta=tta)

    def segment_checked(
        self, image: MedicalImage, *, tta: bool = False
    ) -> tuple[MedicalImage, list[str], list[str]]:
        """:meth:`segment`, why the result does not look like the segmentations a bundle was
        trained on (:mod:`medlabel.segment.plausibility`; ``[]``: it does), and why it is
        less reliable though not meaningless (:mod:`medlabel.segment.resolution`: an image
        coarser than every training image; ``[]``: nothing says so). Recipes have no
        training data to compare with and always give ``[]`` twice."""
        if self.recipe is not None:
            return run_recipe(self.recipe, image), [], []
        labels, stats = self.bundle.predict_detailed(image, tta=tta)
        return labels, list(stats["implausible"]), list(stats["notes"])


def open_segmenter(
    model: str | os.PathLike[str],
    *,
    engine: str = "auto",
    device: str = "cpu",
    precision: str = "auto",
) -> Segmenter:
    """A recipe (``ct-lungs``), a bundled or user model name (``cxr-lungs``), or a bundle folder;
    ``engine``, ``device`` and ``precision`` as for
    :func:`~medlabel.segment.bundle.load_segmentation_bundle` (recipes run on the CPU).

    Raises:
        BundleError: the name is neither a recipe nor a segmentation bundle.
    """
    name = str(model)
    if name in RECIPES:
        return Segmenter(name=name, recipe=name)
    from medlabel.segment.bundle import load_segmentation_bundle

    bundle = load_segmentation_bundle(model, engine=engine, device=device, precision=precision)
    return Segmenter(name=bundle.name, bundle=bundle)
