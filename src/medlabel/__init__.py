"""medlabel: automatic annotation and classification of medical images.

Example:
    >>> import medlabel
    >>> medlabel.__version__ >= "0.1"
    True
"""

from medlabel.image import MedicalImage, same_grid

__version__ = "0.1.0"

__all__ = ["MedicalImage", "__version__", "same_grid"]
