"""Joint augmentation of image and label batches on the CPU.

One random affine transform (rotation, zoom, translation) per sample, optionally composed
with a smooth elastic deformation, is applied to the image (bilinear) and its label
(nearest), plus mirroring along the plan's axes and intensity changes (brightness,
contrast, gamma, noise) on the image only.

Example:
    >>> import torch
    >>> aug = SegAugment(mirror_axes=(0,))
    >>> x, y = aug(torch.rand(2, 1, 16, 16), torch.zeros(2, 16, 16, dtype=torch.long),
    ...            torch.Generator().manual_seed(0))
    >>> x.shape, y.shape, y.dtype
    (torch.Size([2, 1, 16, 16]), torch.Size([2, 16, 16]), torch.int64)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["SegAugment"]


@dataclass
class SegAugment:
    """Settings (stored in the bundle's training record).

    Attributes:
        rotate_deg: maximum rotation (in-plane for 2D, about each axis for 3D).
        scale: maximum relative zoom.
        mirror_axes: spatial axes (NumPy order, without batch/channel) flipped at random.
        brightness, contrast, gamma: maximum intensity changes (on z-scored values).
        noise: maximum standard deviation of added Gaussian noise.
        p: probability that a sample gets the spatial transform.
        elastic: standard deviation, in voxels, of a smooth random displacement field (control
            points about every 16 voxels, interpolated smoothly) added to the affine
            transform of the samples that get one; 0 switches it off.
        shift: maximum translation along each axis, as a fraction of the patch size (0.1 on
            a 40-voxel axis moves the content by up to 4 voxels). Crops smaller than the
            patch otherwise sit at the same place in every batch; 0 switches it off.
    """

    rotate_deg: float = 15.0
    scale: float = 0.15
    mirror_axes: tuple[int, ...] = ()
    brightness: float = 0.1
    contrast: float = 0.15
    gamma: float = 0.15
    noise: float = 0.05
    p: float = 0.8
    elastic: float = 0.0
    shift: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment images ``(N, C, *spatial)`` and labels ``(N, *spatial)``."""
        n, dims = x.shape[0], x.ndim - 2
        active = (torch.rand(n, generator=gen) < self.p).float()
        theta = self._affine(n, dims, gen, active, tuple(x.shape[2:]))
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.elastic > 0:
            grid = grid + self._displacement(tuple(x.shape[2:]), gen, active)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = (
            F.grid_sample(
                y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
            )[:, 0]
            .round()
            .long()
        )
        for axis in self.mirror_axes:
            flip = torch.rand(n, generator=gen) < 0.5
            if flip.any():
                x[flip] = torch.flip(x[flip], dims=[axis + 2])  # (N, C, *spatial)
                y[flip] = torch.flip(y[flip], dims=[axis + 1])  # (N, *spatial)
        shape = (n,) + (1,) * (x.ndim - 1)

        def draw(width: float) -> torch.Tensor:
            return ((torch.rand(n, generator=gen) * 2 - 1) * width).view(shape)

        mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
        x = (x - mean) * (1 + draw(self.contrast)) + mean + draw(self.brightness)
        # gamma on a 0..1 rescaled copy keeps the sign of z-scored values meaningful
        lo = x.amin(dim=tuple(range(1, x.ndim)), keepdim=True)
        hi = x.amax(dim=tuple(range(1, x.ndim)), keepdim=True)
        unit = ((x - lo) / (hi - lo + 1e-6)).clamp(0, 1) ** torch.exp(draw(self.gamma))
        x = unit * (hi - lo) + lo
        x = x + torch.randn(x.shape, generator=gen) * draw(self.noise).abs()
        return x, y

    def _displacement(
        self, shape: tuple[int, ...], gen: torch.Generator, active: torch.Tensor
    ) -> torch.Tensor:
        """Smooth displacement ``(N, *spatial, dims)`` in ``affine_grid``'s units."""
        n, dims = active.shape[0], len(shape)
        coarse = [s // 16 + 2 for s in shape]  # control points about every 16 voxels
        field = torch.randn((n, dims, *coarse), generator=gen) * self.elastic
        mode = "bicubic" if dims == 2 else "trilinear"
        field = F.interpolate(field, size=shape, mode=mode, align_corners=True)
        # channel k displaces grid coordinate k (x, y, z order); voxels -> [-1, 1] units
        half = torch.tensor(shape[::-1], dtype=torch.float32) / 2
        field = field * (active.view(n, 1, *([1] * dims)) / half.view(1, dims, *([1] * dims)))
        return field.movedim(1, -1)

    def _affine(
        self,
        n: int,
        dims: int,
        gen: torch.Generator,
        active: torch.Tensor,
        shape: tuple[int, ...],
    ) -> torch.Tensor:
        """Rotation, zoom and translation in voxel space, as ``affine_grid`` expects them.

        ``affine_grid`` works in coordinates normalised to [-1, 1] per axis, so a rotation
        there would shear non-square patches; the matrix is conjugated with the patch
        half-sizes (x, y, z order) to rotate real shapes.
        """

        def uniform(width: float) -> torch.Tensor:
            return (torch.rand(n, generator=gen) * 2 - 1) * width * active

        zoom = 1 + uniform(self.scale)
        rot = torch.eye(dims).repeat(n, 1, 1)
        planes = [(0, 1)] if dims == 2 else [(0, 1), (0, 2), (1, 2)]
        for a, b in planes:
            angle = uniform(math.radians(self.rotate_deg))
            r = torch.eye(dims).repeat(n, 1, 1)
            r[:, a, a], r[:, a, b] = torch.cos(angle), -torch.sin(angle)
            r[:, b, a], r[:, b, b] = torch.sin(angle), torch.cos(angle)
            rot = rot @ r
        half = torch.tensor(shape[::-1], dtype=torch.float32) / 2
        theta = torch.zeros(n, dims, dims + 1)
        theta[:, :, :dims] = (rot / zoom.view(n, 1, 1)) * half[None, None, :] / half[None, :, None]
        if self.shift > 0:  # no draw otherwise: the random stream of older runs is kept
            # normalised coordinates span 2 units per axis, so a fraction f of the patch is 2f
            theta[:, :, dims] = torch.stack([uniform(2 * self.shift) for _ in range(dims)], 1)
        return theta
