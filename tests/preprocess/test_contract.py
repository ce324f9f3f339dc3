"""Contract every preprocessing op keeps: new image out, input untouched, metadata kept."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import medlabel.preprocess as pp
from medlabel.image import MedicalImage

INTENSITY_OPS: dict[str, Callable[[MedicalImage], MedicalImage]] = {
    "window": lambda im: pp.window(im, level=100, width=500),
    "window_uint8": lambda im: pp.window(im, "bone", output="uint8"),
    "zscore": pp.zscore,
    "percentile_scale": pp.percentile_scale,
    "clip": lambda im: pp.clip_intensity(im, 0, 1000),
    "clahe": pp.clahe,
    "equalize": pp.equalize_histogram,
    "gaussian": lambda im: pp.gaussian_smooth(im, 1.0),
    "median": pp.median_filter,
    "nlm": lambda im: pp.nl_means(im, patch_size=3, patch_distance=2),
    "anisotropic": lambda im: pp.anisotropic_diffusion(im, iterations=2),
    "n4": lambda im: pp.n4_bias_correction(im, shrink_factor=2, iterations=(5,)),
}

SPATIAL_OPS: dict[str, Callable[[MedicalImage], MedicalImage]] = {
    "resample": lambda im: pp.resample_to_spacing(im, [s * 1.5 for s in im.spacing]),
    "resample_to_reference": lambda im: pp.resample_to_reference(
        im, pp.pad_or_crop(im, [n + 2 for n in im.size])
    ),
    "reorient": lambda im: pp.reorient(im, "RAS"),
    "crop_foreground": lambda im: pp.crop_to_foreground(im, threshold=0),
    "crop_bbox": lambda im: pp.crop_to_bbox(im, (slice(1, 5),) * im.ndim),
    "pad_or_crop": lambda im: pp.pad_or_crop(im, [n + 3 for n in im.size]),
    "resize": lambda im: pp.resize(im, [n // 2 for n in im.size]),
}


def _images(ct: MedicalImage, xray: MedicalImage) -> list[MedicalImage]:
    return [ct, xray]


def _check(op: Callable[[MedicalImage], MedicalImage], image: MedicalImage) -> MedicalImage:
    before = image.array.copy()
    geometry = (image.spacing, image.origin, image.direction)
    out = op(image)
    assert isinstance(out, MedicalImage) and out is not image
    np.testing.assert_array_equal(image.array, before)  # input untouched
    assert (image.spacing, image.origin, image.direction) == geometry
    assert not np.shares_memory(out.array, image.array)
    assert out.modality == image.modality
    assert out.metadata == image.metadata and out.metadata is not image.metadata
    assert out.is_label == image.is_label
    assert out.ndim == image.ndim
    return out


@pytest.mark.parametrize("name", list(INTENSITY_OPS))
def test_intensity_ops_contract(name: str, ct_volume: MedicalImage, xray: MedicalImage) -> None:
    for image in _images(ct_volume, xray):
        out = _check(INTENSITY_OPS[name], image)
        assert out.size == image.size and out.origin == image.origin


@pytest.mark.parametrize("name", list(SPATIAL_OPS))
def test_spatial_ops_contract(
    name: str, ct_volume: MedicalImage, xray: MedicalImage, label_volume: MedicalImage
) -> None:
    for image in [*_images(ct_volume, xray), label_volume]:
        out = _check(SPATIAL_OPS[name], image)
        assert out.dtype == image.dtype
