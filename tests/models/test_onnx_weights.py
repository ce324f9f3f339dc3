"""Torch weights rebuilt from ONNX exports, for every segmentation network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medlabel.models.files import export_onnx, half_state
from medlabel.models.onnx_weights import check_same_outputs, state_from_onnx
from medlabel.segment.networks import SEGMENTATION_NETWORKS, build_segmentation_network


def _trained_like(name: str, seed: int) -> torch.nn.Module:
    """A small network whose weights (PReLU slopes and norms included) are not the defaults."""
    torch.manual_seed(seed)
    net = build_segmentation_network(name, 2, 1, 3, channels=[8, 16, 32], strides=[2, 2])
    with torch.no_grad():
        for value in net.parameters():
            value.add_(0.1 * torch.randn_like(value))
    return net.eval()


@pytest.mark.parametrize("name", SEGMENTATION_NETWORKS)
def test_weights_come_back_from_a_half_precision_export(name: str, tmp_path: Path) -> None:
    net = _trained_like(name, 0)
    example = torch.randn(1, 1, 32, 32)
    path = tmp_path / "net.onnx"
    export_onnx(net, example, path, half=True)
    stored = half_state(net)  # what a bundle's .pt holds
    fresh = _trained_like(name, 1)
    fresh.load_state_dict(state_from_onnx(path, fresh, example))
    used = {k for k, v in stored.items() if v.is_floating_point()}
    for key, value in fresh.state_dict().items():
        if key in used:
            np.testing.assert_allclose(
                value.numpy(), stored[key].float().numpy(), rtol=1e-3, atol=1e-6, err_msg=key
            )
    assert check_same_outputs(fresh, path, example) < 1e-4


def test_a_changed_weight_shows_in_the_outputs(tmp_path: Path) -> None:
    net = _trained_like("unet", 0)
    example = torch.randn(1, 1, 32, 32)
    path = tmp_path / "net.onnx"
    export_onnx(net, example, path)
    assert check_same_outputs(net, path, example) < 1e-5
    with torch.no_grad():
        next(m for m in net.modules() if isinstance(m, torch.nn.PReLU)).weight.add_(0.2)
    assert check_same_outputs(net, path, example) > 1e-3


def test_another_networks_export_is_refused(tmp_path: Path) -> None:
    example = torch.randn(1, 1, 32, 32)
    path = tmp_path / "net.onnx"
    export_onnx(_trained_like("basicunet", 0), example, path)
    with pytest.raises(ValueError, match=r"net\.onnx holds no value for model"):
        state_from_onnx(path, _trained_like("unet", 0), example)
