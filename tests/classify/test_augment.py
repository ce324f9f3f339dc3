"""Batch augmentation: the aspect stretch changes a shape's proportions and nothing else."""

from __future__ import annotations

import torch

from medlabel.classify.augment import Augment


def _extent(mask: torch.Tensor, dim: int) -> int:
    return int((mask.sum(dim=dim) > 0).sum())


def test_aspect_stretch_makes_squares_oblong_and_is_off_by_default() -> None:
    x = torch.zeros(64, 1, 64, 64)
    x[:, :, 24:40, 24:40] = 1.0  # a 16 x 16 square
    plain = dict(rotate_deg=0, scale=0, translate=0, brightness=0, contrast=0, gamma=0, p=1.0)
    same = Augment(**plain)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    out = Augment(**plain, aspect=0.4)(x, torch.Generator().manual_seed(0)) > 0.5
    ratios = [_extent(out[i, 0], 1) / _extent(out[i, 0], 0) for i in range(len(out))]
    assert max(ratios) > 1.2 and min(ratios) < 1 / 1.2  # taller and wider ones
    assert max(ratios) < 1.4 * 1.1 and min(ratios) > 1 / (1.4 * 1.1)  # at most 1.4 (+ pixels)
    areas = out.flatten(1).sum(1).float()
    assert ((areas - 256).abs() / 256).max() < 0.2  # stretched, not zoomed
