"""Named classical recipes: label maps from thresholds and morphology, no training needed.

Each recipe declares the modality and dimensionality it is made for and the labels it
produces; :func:`run_recipe` checks the input, runs it and returns a label map on the
input's grid.

Example:
    >>> from medlabel.segment.recipes import RECIPES
    >>> RECIPES["ct-lungs"].labels
    {1: 'lung_right', 2: 'lung_left'}
"""

from medlabel.segment.recipes import ct, mri, xray  # noqa: F401  (registers the recipes)
from medlabel.segment.recipes.base import RECIPES, Recipe, list_recipes, run_recipe

__all__ = ["RECIPES", "Recipe", "list_recipes", "run_recipe"]
