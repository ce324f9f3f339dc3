"""Image-in, image-out preprocessing shared by training and inference.

Every operation takes a :class:`~medlabel.image.MedicalImage` and returns a new one; the input
is never modified, and modality, metadata and the label flag travel along. Geometry is kept
right: operations that move or resample voxels update spacing, origin and direction so that
world positions stay meaningful. Intensity operations refuse label images.

Modules, one concept each:

* :mod:`~medlabel.preprocess.window`: CT display windows (:func:`window`, :data:`WINDOW_PRESETS`)
* :mod:`~medlabel.preprocess.intensity`: :func:`zscore`, :func:`percentile_scale`,
  :func:`clip_intensity`
* :mod:`~medlabel.preprocess.enhance`: :func:`clahe`, :func:`equalize_histogram`
* :mod:`~medlabel.preprocess.denoise`: :func:`gaussian_smooth`, :func:`median_filter`,
  :func:`nl_means`, :func:`anisotropic_diffusion`, :func:`denoise`
* :mod:`~medlabel.preprocess.bias`: :func:`n4_bias_correction`
* :mod:`~medlabel.preprocess.resample`: :func:`resample_to_spacing`,
  :func:`resample_to_reference`
* :mod:`~medlabel.preprocess.orient`: :func:`orientation_code`, :func:`reorient`
* :mod:`~medlabel.preprocess.crop`: :func:`foreground_bbox`, :func:`crop_to_foreground`,
  :func:`crop_to_bbox`, :func:`pad_or_crop`
* :mod:`~medlabel.preprocess.resize`: :func:`resize`
* :mod:`~medlabel.preprocess.pipeline`: :class:`Pipeline` and the :data:`OPS` registry

Example:
    >>> import numpy as np
    >>> from medlabel.image import MedicalImage
    >>> from medlabel import preprocess
    >>> ct = MedicalImage(np.full((4, 4, 4), 40, np.int16), spacing=(1, 1, 2), modality="CT")
    >>> preprocess.window(ct, "brain").array.mean().item()
    0.5
"""

from medlabel.preprocess.bias import n4_bias_correction
from medlabel.preprocess.crop import (
    crop_to_bbox,
    crop_to_foreground,
    foreground_bbox,
    pad_or_crop,
)
from medlabel.preprocess.denoise import (
    DENOISE_METHODS,
    anisotropic_diffusion,
    denoise,
    estimate_noise_sigma,
    gaussian_smooth,
    median_filter,
    nl_means,
)
from medlabel.preprocess.enhance import clahe, equalize_histogram
from medlabel.preprocess.intensity import clip_intensity, percentile_scale, zscore
from medlabel.preprocess.orient import orientation_code, reorient
from medlabel.preprocess.pipeline import OPS, Pipeline
from medlabel.preprocess.resample import resample_to_reference, resample_to_spacing
from medlabel.preprocess.resize import resize
from medlabel.preprocess.window import WINDOW_PRESETS, window

__all__ = [
    "DENOISE_METHODS",
    "OPS",
    "WINDOW_PRESETS",
    "Pipeline",
    "anisotropic_diffusion",
    "clahe",
    "clip_intensity",
    "crop_to_bbox",
    "crop_to_foreground",
    "denoise",
    "equalize_histogram",
    "estimate_noise_sigma",
    "foreground_bbox",
    "gaussian_smooth",
    "median_filter",
    "n4_bias_correction",
    "nl_means",
    "orientation_code",
    "pad_or_crop",
    "percentile_scale",
    "reorient",
    "resample_to_reference",
    "resample_to_spacing",
    "resize",
    "window",
    "zscore",
]
