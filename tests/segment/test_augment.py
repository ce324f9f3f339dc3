"""Joint augmentation: shapes survive rotation on non-square patches; labels follow images."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medlabel.segment.augment import SegAugment


def _elongation(mask: np.ndarray) -> float:
    coords = np.argwhere(mask).astype(float)
    eig = np.linalg.eigvalsh(np.cov(coords.T))
    return float(eig.max() / eig.min())


def test_rotation_keeps_a_disk_round_on_a_wide_patch() -> None:
    yy, xx = np.mgrid[:32, :128]
    disk = ((yy - 16) ** 2 + (xx - 64) ** 2 <= 10**2).astype(np.int64)
    aug = SegAugment(rotate_deg=45, scale=0.0, brightness=0, contrast=0, gamma=0, noise=0, p=1)
    x = torch.from_numpy(disk[None, None].astype(np.float32)).repeat(8, 1, 1, 1)
    y = torch.from_numpy(disk[None]).repeat(8, 1, 1)
    xa, ya = aug(x, y, torch.Generator().manual_seed(1))
    for k in range(8):
        out = ya[k].numpy()
        assert abs(out.sum() / disk.sum() - 1) < 0.05  # area kept
        assert _elongation(out) < 1.15  # still a disk, not a sheared ellipse
        assert ((xa[k, 0].numpy() > 0.5) == (out == 1)).mean() > 0.99  # label follows image


def test_mirroring_flips_image_and_label_together() -> None:
    x = torch.arange(16 * 4 * 6, dtype=torch.float32).reshape(16, 1, 4, 6) % 24
    y = (x[:, 0] > 11).long()
    aug = SegAugment(mirror_axes=(1,), brightness=0, contrast=0, gamma=0, noise=0, p=0)
    xa, ya = aug(x.clone(), y.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(ya, (xa[:, 0] > 11.5).long())
    flipped = [
        bool(torch.allclose(xa[k], torch.flip(x[k], dims=[2]), atol=1e-4)) for k in range(16)
    ]
    kept = [bool(torch.allclose(xa[k], x[k], atol=1e-4)) for k in range(16)]
    assert all(f or s for f, s in zip(flipped, kept, strict=True))
    assert 0 < sum(flipped) < 16
    x3 = torch.rand(6, 1, 3, 4, 5)
    y3 = (x3[:, 0] > 0.5).long()
    for axis in range(3):
        a3 = SegAugment(mirror_axes=(axis,), brightness=0, contrast=0, gamma=0, noise=0, p=0)
        xa3, ya3 = a3(x3.clone(), y3.clone(), torch.Generator().manual_seed(axis))
        assert torch.equal(ya3, (xa3[:, 0] > 0.5).long())  # labels stay with their images


def test_elastic_deformation_bends_shapes_smoothly_and_labels_follow() -> None:
    yy, xx = np.mgrid[:64, :96]
    disk = ((yy - 32) ** 2 + (xx - 48) ** 2 <= 16**2).astype(np.int64)
    flat = dict(rotate_deg=0, scale=0.0, brightness=0, contrast=0, gamma=0, noise=0, p=1)
    x = torch.from_numpy(disk[None, None].astype(np.float32)).repeat(6, 1, 1, 1)
    y = torch.from_numpy(disk[None]).repeat(6, 1, 1)
    same, _ = SegAugment(**flat)(x.clone(), y.clone(), torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-4)  # no rotation, zoom or elastic: identity
    xa, ya = SegAugment(elastic=2.0, **flat)(x, y, torch.Generator().manual_seed(0))
    for k in range(6):
        out = ya[k].numpy()
        changed = (out != disk).sum()
        assert 20 < changed < 3 * 2.0 * (2 * np.pi * 16)  # boundary moved a few px at most
        assert ndimage.label(out, np.ones((3, 3)))[1] == 1  # bent, not torn: one piece
        assert abs(out.sum() / disk.sum() - 1) < 0.35  # a 2 px swell is +25 % here
        assert ((xa[k, 0].numpy() > 0.5) == (out == 1)).mean() > 0.99  # label follows image
    x3 = torch.rand(2, 1, 12, 16, 20)
    xa3, ya3 = SegAugment(elastic=2.0, **flat)(
        x3, (x3[:, 0] > 0.5).long(), torch.Generator().manual_seed(1)
    )
    assert xa3.shape == x3.shape and ya3.shape == (2, 12, 16, 20)


def test_shift_moves_image_and_label_together_within_the_bound() -> None:
    cube = np.zeros((20, 24, 16), np.int64)
    cube[8:12, 10:14, 6:10] = 1
    flat = dict(rotate_deg=0, scale=0.0, brightness=0, contrast=0, gamma=0, noise=0, p=1)
    x = torch.from_numpy(cube[None, None].astype(np.float32)).repeat(12, 1, 1, 1, 1)
    y = torch.from_numpy(cube[None]).repeat(12, 1, 1, 1)
    xa, ya = SegAugment(shift=0.25, **flat)(x, y, torch.Generator().manual_seed(0))
    centre = np.argwhere(cube).mean(0)
    moves = []
    for k in range(12):
        out = ya[k].numpy()
        assert out.sum() > 0
        assert ((xa[k, 0].numpy() > 0.5) == (out == 1)).mean() > 0.99  # label follows image
        moves.append(np.argwhere(out).mean(0) - centre)
    moves_arr = np.abs(np.array(moves))
    bound = 0.25 * np.array(cube.shape) + 1  # a quarter of each axis, plus rounding
    assert (moves_arr <= bound).all()
    assert (moves_arr.max(0) >= 2).all()  # every axis moved somewhere in the batch
    still, _ = SegAugment(**flat)(x.clone(), y.clone(), torch.Generator().manual_seed(0))
    assert torch.allclose(still, x, atol=1e-4)  # the default (shift 0) moves nothing
