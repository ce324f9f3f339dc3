"""Tests of medlabel.preprocess.crop."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.errors import GeometryMismatchError, PreprocessError
from medlabel.image import MedicalImage
from medlabel.preprocess.crop import (
    CT_FOREGROUND_HU,
    crop_to_bbox,
    crop_to_foreground,
    foreground_bbox,
    foreground_threshold,
    pad_or_crop,
)


def _same_world(
    out: MedicalImage, src: MedicalImage, out_index: tuple[int, ...], src_index: tuple[int, ...]
) -> None:
    np.testing.assert_allclose(
        out.index_to_world(out_index), src.index_to_world(src_index), atol=1e-9
    )


def test_foreground_bbox_ct_threshold(ct_volume: MedicalImage) -> None:
    bbox = foreground_bbox(ct_volume, threshold=-500)
    fg = np.argwhere(ct_volume.array > -500)
    lows, highs = fg.min(0), fg.max(0)
    expected = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(lows, highs, strict=True))
    assert bbox == expected
    assert foreground_bbox(ct_volume, threshold=500) == (slice(12, 20),) * 3


def test_foreground_bbox_nonzero_default_and_channels(rgb_image: MedicalImage) -> None:
    arr = np.zeros((5, 6, 3), np.uint8)
    arr[1, 2, 0] = 1
    arr[3, 4, 2] = 1
    assert foreground_bbox(MedicalImage(arr, spacing=(1, 1))) == (slice(1, 4), slice(2, 5))
    assert foreground_bbox(np.array([0, 0, 3, 0])) == (slice(2, 3),)
    with pytest.raises(PreprocessError, match="no foreground"):
        foreground_bbox(np.zeros((3, 3)))


def test_crop_to_bbox_updates_origin_oblique(oblique_volume: MedicalImage) -> None:
    bbox = (slice(2, 10), slice(5, 15), slice(3, 20))  # z, y, x
    out = crop_to_bbox(oblique_volume, bbox)
    np.testing.assert_array_equal(out.array, oblique_volume.array[bbox])
    assert out.size == (17, 10, 8)
    _same_world(out, oblique_volume, (0, 0, 0), (3, 5, 2))
    _same_world(out, oblique_volume, (16, 9, 7), (19, 14, 9))
    assert out.spacing == oblique_volume.spacing and out.direction == oblique_volume.direction
    # a copy, not a view into the input
    assert not np.shares_memory(out.array, oblique_volume.array)


def test_crop_to_bbox_errors(xray: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="2 slices"):
        crop_to_bbox(xray, (slice(0, 2),))
    with pytest.raises(PreprocessError, match="step 1"):
        crop_to_bbox(xray, (slice(0, 10, 2), slice(0, 5)))
    with pytest.raises(PreprocessError, match="empty"):
        crop_to_bbox(xray, (slice(5, 5), slice(0, 5)))


def test_crop_to_foreground_with_margin(ct_volume: MedicalImage) -> None:
    out = crop_to_foreground(ct_volume, threshold=500, margin_mm=2.0)
    # bone core spans voxels 12..19 on every axis; margins of 2 mm are 3, 3 and 1 voxels
    # along x (0.8 mm), y (0.9 mm) and z (2.0 mm)
    assert out.size == (8 + 6, 8 + 6, 8 + 2)
    _same_world(out, ct_volume, (0, 0, 0), (9, 9, 11))
    assert out.modality == "CT" and out.metadata == ct_volume.metadata
    np.testing.assert_array_equal(out.array, ct_volume.array[11:21, 9:23, 9:23])


def test_crop_to_foreground_margin_clipped_and_mask(
    ct_volume: MedicalImage, label_volume: MedicalImage
) -> None:
    out = crop_to_foreground(ct_volume, threshold=-500, margin_mm=100.0)
    assert out.size == ct_volume.size
    assert out.origin == pytest.approx(ct_volume.origin)
    mask = ct_volume.with_array(label_volume.array, is_label=True)  # same grid as the CT
    by_mask = crop_to_foreground(ct_volume, mask=mask)
    fg = np.argwhere(label_volume.array > 0)
    assert by_mask.size == tuple((fg.max(0) - fg.min(0) + 1)[::-1])
    _same_world(by_mask, ct_volume, (0, 0, 0), tuple(fg.min(0)[::-1]))


def test_crop_to_foreground_labels_and_errors(label_volume: MedicalImage) -> None:
    out = crop_to_foreground(label_volume)
    assert out.is_label and out.dtype == np.uint8
    assert (out.array > 0).sum() == (label_volume.array > 0).sum()
    empty = label_volume.with_array(np.zeros_like(label_volume.array))
    with pytest.raises(PreprocessError, match="no foreground"):
        crop_to_foreground(empty)
    with pytest.raises(PreprocessError, match="margin_mm"):
        crop_to_foreground(label_volume, margin_mm=-1)
    with pytest.raises(PreprocessError, match="mask shape"):
        crop_to_foreground(label_volume, mask=np.ones((2, 2, 2)))


def test_mask_image_on_another_grid_refused(
    ct_volume: MedicalImage, label_volume: MedicalImage
) -> None:
    # same array shape, different origin: voxel-wise use would be silently wrong
    with pytest.raises(GeometryMismatchError, match="resample the mask first"):
        crop_to_foreground(ct_volume, mask=label_volume)


def test_pad_or_crop_pads_with_minimum_and_centres(ct_volume: MedicalImage) -> None:
    out = pad_or_crop(ct_volume, (36, 31, 40))
    assert out.size == (36, 31, 40) and out.dtype == np.int16
    # x: pad 2 + 2; y: crop 1 at the end (0 before); z: pad 4 + 4
    np.testing.assert_array_equal(out.array[4:36, :, 2:34], ct_volume.array[:, 0:31, :])
    assert out.array[0, 0, 0] == -1000 and out.array[-1, -1, -1] == -1000  # minimum
    _same_world(out, ct_volume, (2, 0, 4), (0, 0, 0))


def test_pad_or_crop_odd_crop_and_value(xray: MedicalImage) -> None:
    out = pad_or_crop(xray, (37, 51), value=7)
    # x: 40 -> 37 crops 1 before, 2 after; y: 48 -> 51 pads 1 before, 2 after
    np.testing.assert_array_equal(out.array[1:49, :], xray.array[:, 1:38])
    assert out.array[0, 0] == 7 and out.array[50, 36] == 7
    _same_world(out, xray, (0, 1), (1, 0))


def test_pad_or_crop_channels_labels_and_clipped_value(
    rgb_image: MedicalImage, label_volume: MedicalImage
) -> None:
    out = pad_or_crop(rgb_image, (26, 30), value=-5)  # clipped into uint8
    assert out.array.shape == (30, 26, 3)
    assert out.array[0, 0].tolist() == [0, 0, 0]  # only x is padded: column 0
    lab = pad_or_crop(label_volume, (40, 40, 40))
    assert lab.is_label and lab.array[0, 0, 0] == 0
    assert (lab.array == 2).sum() == (label_volume.array == 2).sum()
    with pytest.raises(PreprocessError, match="3 sizes"):
        pad_or_crop(label_volume, (10, 10))
    with pytest.raises(PreprocessError, match="sizes >= 1"):
        pad_or_crop(label_volume, (10, 0, 10))


def test_pad_or_crop_too_large_for_memory_is_refused(xray: MedicalImage) -> None:
    with pytest.raises(PreprocessError, match="pad_or_crop would make a 10000000 x 10000000"):
        pad_or_crop(xray, (10_000_000, 10_000_000))


def test_ct_air_is_not_foreground_with_auto(ct_volume: MedicalImage) -> None:
    # air is -1000 HU, not 0: "non-zero" keeps everything, "auto" keeps the body (> -500 HU)
    assert crop_to_foreground(ct_volume).size == ct_volume.size
    body = crop_to_foreground(ct_volume, threshold="auto")
    assert body.size == crop_to_foreground(ct_volume, threshold=-500).size
    assert body.size == (22, 22, 22)
    assert foreground_threshold(ct_volume, "auto") == CT_FOREGROUND_HU


def test_mri_background_noise_is_not_foreground_with_auto(make_ball) -> None:
    rng = np.random.default_rng(1)
    arr = np.abs(rng.normal(0, 15, (12, 40, 40)))  # Rician-like background noise
    arr[make_ball(arr.shape, (6, 20, 20), 9)] += 600
    mri = MedicalImage(arr, spacing=(1, 1, 3), modality="MR")
    assert crop_to_foreground(mri).size == mri.size
    brain = crop_to_foreground(mri, threshold="auto")
    assert brain.size == crop_to_foreground(mri, threshold="otsu").size
    assert brain.size == (19, 19, 12)
    assert 50 < foreground_threshold(mri, "auto") < 600


def test_foreground_threshold_names() -> None:
    img = MedicalImage(np.array([[0.0, 2.0, 5.0]]))
    assert foreground_threshold(img, None) is None
    assert foreground_threshold(img, "nonzero") is None
    assert foreground_threshold(img, 1) == 1.0
    with pytest.raises(PreprocessError, match=r"'brightest'.*'auto', 'otsu' or 'nonzero'"):
        foreground_threshold(img, "brightest")
