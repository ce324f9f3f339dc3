"""Segmentation: classical blocks and recipes, learned U-Nets; label maps on the input grid.

Every segmenter returns a label map (:class:`~medlabel.image.MedicalImage` with
``is_label=True``) on exactly the grid of its input, with the label names in
``metadata["labels"]``.

Example:
    >>> from medlabel.segment import list_recipes
    >>> "ct-lungs" in list_recipes()
    True
"""

from medlabel.segment.labelmap import label_map, label_names
from medlabel.segment.recipes import RECIPES, Recipe, list_recipes, run_recipe

__all__ = ["RECIPES", "Recipe", "label_map", "label_names", "list_recipes", "run_recipe"]
