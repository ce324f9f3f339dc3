"""Segmentation networks by name, from MONAI, 2D or 3D.

* ``unet``: MONAI's UNet with two residual units per level and instance norm (the default);
* ``resunet``: a residual-encoder U-Net (MONAI DynUNet with residual blocks), nnU-Net-like;
* ``dynunet``: nnU-Net's own topology (MONAI DynUNet: two plain convolutions per level,
  instance norm, leaky ReLU, strided convolutions down, transposed convolutions up);
* ``basicunet``: MONAI's BasicUNet (two plain convolutions per level);
* ``segresnet``: MONAI's SegResNet.

Example:
    >>> import torch
    >>> net = build_segmentation_network("unet", 2, 1, 3, channels=[8, 16, 32], strides=[2, 2])
    >>> net(torch.zeros(1, 1, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from medlabel.errors import MedlabelError

if TYPE_CHECKING:  # torch loads when a network is built, not when the plan reads the names
    from torch import nn

__all__ = ["DEEPLY_SUPERVISED", "SEGMENTATION_NETWORKS", "build_segmentation_network"]

SEGMENTATION_NETWORKS = ("unet", "resunet", "dynunet", "basicunet", "segresnet")
# networks that take ``deep_supervision=True`` (plans switch it on for them, as nnU-Net does)
DEEPLY_SUPERVISED = ("resunet", "dynunet")


def build_segmentation_network(
    name: str,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int] = (16, 32, 64, 128, 256),
    strides: Sequence[int] = (2, 2, 2, 2),
    **kwargs: Any,
) -> nn.Module:
    """Build network ``name``; ``channels``/``strides`` set width and depth (one per level).

    Raises:
        MedlabelError: unknown name.
    """
    from monai.networks.nets import BasicUNet, DynUNet, SegResNet, UNet

    if name == "unet":
        return UNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            channels=tuple(channels),
            strides=tuple(strides),
            num_res_units=int(kwargs.get("num_res_units", 2)),
            norm="INSTANCE",
            dropout=float(kwargs.get("dropout", 0.0)),
        )
    if name in DEEPLY_SUPERVISED:
        levels = len(channels)
        # deep supervision: in training the network also returns the decoder's coarser
        # outputs, up-sampled and stacked on dimension 1; in eval mode only the final one
        heads = max(0, levels - 2) if kwargs.get("deep_supervision") else 0
        return DynUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[3] * levels,
            strides=[1, *strides],
            upsample_kernel_size=list(strides),
            filters=list(channels),
            res_block=name == "resunet",
            deep_supervision=heads > 0,
            deep_supr_num=max(1, heads),
        )
    if name == "basicunet":
        feats = (*list(channels)[:5], channels[0])
        feats = tuple(list(feats) + [feats[-1]] * (6 - len(feats)))
        return BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=feats,
        )
    if name == "segresnet":
        return SegResNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            init_filters=int(channels[0]),
        )
    raise MedlabelError(
        None,
        f"unknown segmentation network {name!r}; choose from {', '.join(SEGMENTATION_NETWORKS)}",
    )
