"""Classification networks by name: a compact CNN for small images and MONAI's families.

``compact`` is sized for 28-64 px inputs (MedMNIST) and trains in minutes on two CPU cores;
``resnet18``/``resnet34``/``resnet50``, ``densenet121`` and ``efficientnet-b0`` come from
MONAI, in 2D or 3D, trained from scratch (no downloaded weights).

Example:
    >>> import torch
    >>> net = build_network("compact", spatial_dims=2, in_channels=1, num_classes=2)
    >>> net(torch.zeros(3, 1, 28, 28)).shape
    torch.Size([3, 2])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from medlabel.classify.logits import probabilities
from medlabel.errors import MedlabelError

__all__ = [
    "NETWORKS",
    "CompactCNN",
    "Normalised",
    "build_network",
    "capture_features",
    "count_parameters",
    "normalise",
    "probabilities",
]


class CompactCNN(nn.Module):
    """Four convolution blocks (conv-BN-ReLU x2, pooling) then global pooling and a linear head.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        num_classes: outputs (logits).
        width: channels of the first block (doubling per block).
        dropout: dropout before the head.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        num_classes: int = 2,
        width: int = 32,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        conv: Any = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm: Any = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        pool: Any = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        gap: Any = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d
        layers: list[nn.Module] = []
        channels = in_channels
        for i, out in enumerate([width, width * 2, width * 4, width * 8]):
            layers += [
                conv(channels, out, 3, padding=1, bias=False),
                norm(out),
                nn.ReLU(inplace=True),
                conv(out, out, 3, padding=1, bias=False),
                norm(out),
                nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(pool(2))
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = gap(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector (deep features for classic models)."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.head(self.pool(self.features(x)))


def _monai_resnet(depth: int) -> Callable[..., nn.Module]:
    def build(spatial_dims: int, in_channels: int, num_classes: int, **kw: Any) -> nn.Module:
        from monai.networks.nets import resnet

        factory = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50}[depth]
        return factory(
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            num_classes=num_classes,
            conv1_t_size=kw.pop("conv1_t_size", 7),
            conv1_t_stride=kw.pop("conv1_t_stride", 2),
            **kw,
        )

    return build


def _densenet(spatial_dims: int, in_channels: int, num_classes: int, **kw: Any) -> nn.Module:
    from monai.networks.nets import DenseNet121

    return DenseNet121(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kw
    )


def _efficientnet(spatial_dims: int, in_channels: int, num_classes: int, **kw: Any) -> nn.Module:
    from monai.networks.nets import EfficientNetBN

    return EfficientNetBN(
        "efficientnet-b0",
        pretrained=False,
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        num_classes=num_classes,
        **kw,
    )


def _compact(spatial_dims: int, in_channels: int, num_classes: int, **kw: Any) -> nn.Module:
    return CompactCNN(spatial_dims, in_channels, num_classes, **kw)


#: Network builders by name.
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "compact": _compact,
    "resnet18": _monai_resnet(18),
    "resnet34": _monai_resnet(34),
    "resnet50": _monai_resnet(50),
    "densenet121": _densenet,
    "efficientnet-b0": _efficientnet,
}


def build_network(
    name: str, *, spatial_dims: int, in_channels: int, num_classes: int, **kwargs: Any
) -> nn.Module:
    """Instantiate a network by name.

    Raises:
        MedlabelError: unknown name.
    """
    if name not in NETWORKS:
        raise MedlabelError(None, f"unknown model {name!r}; choose one of {', '.join(NETWORKS)}")
    return NETWORKS[name](spatial_dims, in_channels, num_classes, **kwargs)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@contextlib.contextmanager
def capture_features(net: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the input of ``net``'s last linear layer (its deep features) on every call.

    Example:
        >>> net = build_network("compact", spatial_dims=2, in_channels=1, num_classes=2, width=8)
        >>> with capture_features(net.eval()) as feats:
        ...     _ = net(torch.zeros(3, 1, 28, 28))
        >>> tuple(feats[0].shape)
        (3, 64)
    """
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0].detach()))
    try:
        yield captured
    finally:
        hook.remove()


def normalise(x01: torch.Tensor, mode: str, mean: float, std: float) -> torch.Tensor:
    """Scale [0, 1] inputs: by the training set's ``mean``/``std`` (``dataset``), or each
    image by its own mean and standard deviation (``image``: robust to exposure and scanner
    differences)."""
    if mode == "image":
        dims = tuple(range(1, x01.ndim))
        centre = x01.mean(dim=dims, keepdim=True)
        spread = x01.std(dim=dims, keepdim=True).clamp_min(1e-3)
        return (x01 - centre) / spread
    return (x01 - mean) / std


class Normalised(nn.Module):
    """A network with its input scaling built in (:func:`normalise`), so that it, and its
    ONNX export, take raw 0..255 values.

    Example:
        >>> net = build_network("compact", spatial_dims=2, in_channels=1, num_classes=2, width=8)
        >>> tuple(Normalised(net, 0.5, 0.25).eval()(torch.zeros(1, 1, 28, 28)).shape)
        (1, 2)
    """

    def __init__(self, net: nn.Module, mean: float, std: float, mode: str = "dataset") -> None:
        super().__init__()
        self.net = net
        self.mode = mode
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(normalise(x / 255.0, self.mode, self.mean, self.std))
