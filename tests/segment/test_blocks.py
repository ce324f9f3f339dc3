"""Building blocks: millimetre radii on anisotropic grids, components, growing, watershed."""

from __future__ import annotations

import numpy as np
import pytest

from medlabel.segment.blocks import (
    close,
    connected_components,
    dilate,
    erode,
    fill_holes,
    hu_range,
    keep_largest,
    open_,
    otsu,
    region_grow,
    remove_border_touching,
    remove_small,
    split_touching,
    threshold,
)


def ball(
    shape: tuple[int, ...],
    center: tuple[float, ...],
    radius_mm: float,
    spacing_np: tuple[float, ...],
) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing_np, strict=True))
    return d2 <= radius_mm**2


def test_dilate_is_isotropic_in_millimetres_on_anisotropic_grid() -> None:
    mask = np.zeros((21, 41, 41), bool)
    mask[10, 20, 20] = True
    grown = dilate(mask, 6.0, (0.5, 0.5, 2.0))  # ITK order: x, y 0.5 mm; z 2 mm
    # 6 mm reach: 12 voxels in-plane, 3 slices through-plane
    assert grown[10, 20, 32] and not grown[10, 20, 33]
    assert grown[13, 20, 20] and not grown[14, 20, 20]
    np.testing.assert_array_equal(grown, ball(mask.shape, (10, 20, 20), 6.0, (2.0, 0.5, 0.5)))


def test_erode_dilate_open_close() -> None:
    sp = (1.0, 1.0)
    square = np.zeros((40, 40), bool)
    square[10:30, 10:30] = True
    assert erode(square, 2.0, sp).sum() == 16 * 16
    spur = square.copy()
    spur[20, 30:38] = True  # a 1-pixel line sticking out
    np.testing.assert_array_equal(open_(spur, 1.5, sp), square)
    gap = square.copy()
    gap[:, 19:21] = False  # a 2-pixel slit
    assert close(gap, 2.0, sp)[15, 19:21].all()
    assert not close(gap, 0.5, sp)[15, 19:21].any()
    assert close(square, 3.0, sp).sum() == square.sum()  # a convex shape does not change


def test_erode_keeps_masks_that_fill_the_crop() -> None:
    assert erode(np.ones((5, 5), bool), 2.0).all()
    cut = np.zeros((10, 10), bool)
    cut[:, :6] = True  # a structure cut by the left edge of the crop
    eroded = erode(cut, 2.0)
    assert eroded[:, :4].all() and not eroded[:, 4:].any()


def test_fill_holes_whole_and_per_slice() -> None:
    tube = np.zeros((5, 9, 9), bool)
    tube[:, 2:7, 2:7] = True
    tube[:, 4, 4] = False  # a channel open at top and bottom
    assert not fill_holes(tube)[:, 4, 4].any()  # not enclosed in 3D
    assert fill_holes(tube, axis=0)[:, 4, 4].all()  # enclosed in every slice


def test_components_largest_small_border() -> None:
    m = np.zeros((10, 10), bool)
    m[0:3, 0:3] = True  # 9 px, touches border
    m[5:9, 5:9] = True  # 16 px
    m[5, 2] = True  # 1 px
    _, n = connected_components(m)
    assert n == 3
    assert keep_largest(m).sum() == 16
    assert keep_largest(m, n=2).sum() == 25
    assert remove_small(m, 4.0, (2.0, 2.0)).sum() == 26  # 1 px = 4 mm^2 is kept at 4 mm^2
    assert remove_small(m, 5.0, (2.0, 2.0)).sum() == 25
    assert remove_border_touching(m).sum() == 17
    diagonal = np.eye(4, dtype=bool)
    assert connected_components(diagonal)[1] == 4
    assert connected_components(diagonal, full_connectivity=True)[1] == 1


def test_thresholds() -> None:
    hu = np.array([-1000, -500, -100, 40, 1000])
    assert hu_range(hu, "fat").tolist() == [False, False, True, False, False]
    assert threshold(hu, -200, 100).tolist() == [False, False, True, True, False]
    with pytest.raises(ValueError, match="unknown HU range"):
        hu_range(hu, "muscle")
    with pytest.raises(ValueError, match="above upper"):
        threshold(hu, 10, 0)
    values = np.r_[np.full(50, 10.0), np.full(50, 90.0)]
    assert 10 < otsu(values) < 90
    with pytest.raises(ValueError, match="two distinct"):
        otsu(np.ones(5))


def test_region_grow_stays_in_range_and_connected() -> None:
    img = np.zeros((3, 10, 10), np.float32)
    img[:, :, 5] = 500  # a wall
    grown = region_grow(img, [(1, 1, 1)], -10, 10)
    assert grown[:, :, :5].all() and not grown[:, :, 5:].any()
    assert not region_grow(img, [(1, 1, 5)], -10, 10).any()  # seed outside the range
    assert not region_grow(img, [(9, 9, 9)], -10, 10).any()  # seed outside the array


def test_split_touching_separates_two_discs() -> None:
    a = ball((30, 50), (15, 14), 9.0, (1.0, 1.0))
    b = ball((30, 50), (15, 32), 9.0, (1.0, 1.0))
    labels = split_touching(a | b, min_distance_mm=8.0)
    assert labels.max() == 2
    assert len(set(labels[a & ~b].tolist()) - {0}) == 1
    assert labels[15, 14] != labels[15, 32]
