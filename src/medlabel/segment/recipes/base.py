"""The recipe registry and the checks every recipe run goes through.

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> ct = MedicalImage(np.full((4, 32, 32), -1000, np.int16), spacing=(2, 2, 2), modality="CT")
    >>> ct.array[:, 8:24, 8:24] = 40
    >>> seg = run_recipe("ct-body", ct)
    >>> int(seg.array.sum()) == 4 * 16 * 16, seg.metadata["labels"]
    (True, {1: 'body'})
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.preprocess.network import luminance, nonfinite_reason
from medlabel.segment.labelmap import label_map

__all__ = ["RECIPES", "Recipe", "list_recipes", "register", "run_recipe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """A classical segmentation recipe.

    Attributes:
        name: registry name (``ct-lungs``).
        modalities: modality codes it is made for (``CT``; ``MR``; ``CR``, ``DX``).
        dims: spatial dimensionality of its input (2 or 3).
        labels: value -> class name of its output.
        description: one line for ``medlabel models``.
        run: the function ``MedicalImage -> integer array`` (spatial shape of the input).
    """

    name: str
    modalities: tuple[str, ...]
    dims: int
    labels: dict[int, str]
    description: str
    run: Callable[[MedicalImage], np.ndarray]


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add a recipe to :data:`RECIPES`."""
    RECIPES[recipe.name] = recipe
    return recipe


def list_recipes() -> list[str]:
    """Names of the registered recipes."""
    return sorted(RECIPES)


def run_recipe(name: str, image: MedicalImage) -> MedicalImage:
    """Run the recipe ``name`` on ``image`` and return its label map on ``image``'s grid.

    A 2D recipe accepts a single-slice 3D volume (a radiograph stored as a 1-slice NIfTI) and
    returns its label map on that 3D grid.

    Raises:
        MedlabelError: unknown recipe, colour or wrong-dimensional input, an image holding
            NaN or infinite values (counted), or an image whose modality is declared and
            differs from the recipe's.
    """
    source = image.metadata.get("path")
    if name not in RECIPES:
        raise MedlabelError(
            None, f"unknown recipe {name!r}; choose from {', '.join(list_recipes())}"
        )
    recipe = RECIPES[name]
    if image.modality and image.modality.upper() not in recipe.modalities:
        raise MedlabelError(
            source,
            f"recipe {name} is made for {'/'.join(recipe.modalities)} images, "
            f"this one is {image.modality}",
        )
    values = image.array
    why = nonfinite_reason(values) if values.dtype.kind == "f" else None
    if why:  # what NaN stands for is unknown: refuse rather than threshold a guess
        raise MedlabelError(source, why)
    if image.channels:
        if recipe.dims != 2 or image.channels not in (3, 4):
            raise MedlabelError(source, f"recipe {name} needs a single-channel image")
        values = luminance(values)
    single_slice = image.ndim == 3 and recipe.dims == 2 and values.shape[0] == 1
    if image.ndim != recipe.dims and not single_slice:
        raise MedlabelError(
            source, f"recipe {name} works on {recipe.dims}D images, this one is {image.ndim}D"
        )
    grid = image.with_array(values) if image.channels else image
    work = grid
    if single_slice:
        work = MedicalImage(
            values[0], spacing=image.spacing[:2], modality=image.modality, metadata=image.metadata
        )
    labels = np.asarray(recipe.run(work))
    if single_slice:
        labels = labels[None]
    log.debug("recipe %s: %d labelled voxels", name, int(np.count_nonzero(labels)))
    return label_map(grid, labels, recipe.labels)
