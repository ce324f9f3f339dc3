"""Pictures of images and results: slice montages with label overlays.

Example:
    >>> from medlabel.visualize import render_preview
    >>> callable(render_preview)
    True
"""

from medlabel.visualize.preview import LABEL_COLOURS, render_preview, to_display

__all__ = ["LABEL_COLOURS", "render_preview", "to_display"]
