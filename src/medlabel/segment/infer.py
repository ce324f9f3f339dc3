"""Inference: sliding windows with Gaussian blending, mirroring TTA, post-processing.

Works with any predictor that maps a ``(B, 1, *patch)`` tensor to ``(B, K+1, *patch)`` logits:
a torch module, or an ONNX Runtime session wrapped by :func:`onnx_predictor`.

Example:
    >>> import numpy as np, torch
    >>> net = lambda x: torch.cat([x * 0 + 1, x * 0], dim=1)  # always "background"
    >>> probs = predict_probabilities(net, np.zeros((40, 30), np.float32), patch_size=(32, 32))
    >>> probs.shape, round(float(probs[0].min()), 3)  # softmax of logits (1, 0)
    ((2, 40, 30), 0.731)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from medlabel.devices import bf16_autocast
from medlabel.segment.blocks import fill_holes, keep_largest

__all__ = [
    "onnx_predictor",
    "postprocess",
    "predict_probabilities",
    "slice_predictor",
    "torch_predictor",
]

Predictor = Callable[[torch.Tensor], torch.Tensor]


def onnx_predictor(session: Any) -> Predictor:
    """Wrap an ONNX Runtime session as a tensor-to-tensor predictor."""

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"image": x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)

    return run


def torch_predictor(net: torch.nn.Module, *, bf16: bool = False) -> Predictor:
    """``net`` as a predictor that takes and returns float32 CPU tensors wherever ``net``
    lives (the CPU or a GPU); ``bf16`` runs it under bfloat16 autocast (weights stay float32).

    Example:
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> torch_predictor(net, bf16=True)(torch.zeros(1, 1, 8, 8)).dtype
        torch.float32
    """
    device = next(net.parameters()).device

    def run(x: torch.Tensor) -> torch.Tensor:
        with bf16_autocast(device, bf16):
            return net(x.to(device)).float().cpu()

    return run


def slice_predictor(predictor: Predictor, slice_axis: int | None) -> Predictor:
    """Let a 2D predictor take ``(B, 1, *patch)`` windows that are one slice thick.

    With ``slice_axis=None`` the predictor is returned unchanged.

    Example:
        >>> net = lambda x: torch.cat([x, -x], dim=1)  # a "2D network"
        >>> slice_predictor(net, 0)(torch.zeros(2, 1, 1, 8, 8)).shape
        torch.Size([2, 2, 1, 8, 8])
    """
    if slice_axis is None:
        return predictor
    dim = slice_axis + 2

    def run(x: torch.Tensor) -> torch.Tensor:
        return predictor(x.squeeze(dim)).unsqueeze(dim)

    return run


def predict_probabilities(
    predictor: Predictor,
    x: np.ndarray,
    patch_size: Sequence[int],
    *,
    mirror_axes: Sequence[int] = (),
    batch_size: int = 4,
    overlap: float = 0.5,
) -> np.ndarray:
    """Class probabilities ``(K+1, *x.shape)`` for a normalised spatial array ``x``.

    Args:
        predictor: logits from a batch of patches.
        x: normalised image on the network's grid (NumPy order, no channel axis).
        patch_size: window size (NumPy order); ``x`` is padded when smaller.
        mirror_axes: when given, the prediction is averaged over every combination of flips
            along these axes (test-time augmentation).
        batch_size: windows per forward pass.
        overlap: window overlap (0.5 with Gaussian weights, as nnU-Net).
    """
    arr = np.asarray(x, np.float32)
    pads = [(0, max(0, p - s)) for p, s in zip(patch_size, arr.shape, strict=True)]
    padded = np.pad(arr, pads, mode="edge") if any(p[1] for p in pads) else arr
    inputs = torch.from_numpy(np.ascontiguousarray(padded))[None, None]
    combos = [
        c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]
    total: torch.Tensor | None = None
    whole = tuple(padded.shape) == tuple(int(p) for p in patch_size)  # one window: no blending
    if not whole:  # MONAI's import takes about a second: only when windows are blended
        from monai.inferers import sliding_window_inference
    with torch.no_grad():
        for flips in combos:
            dims = [a + 2 for a in flips]
            xi = torch.flip(inputs, dims) if dims else inputs
            logits = (
                predictor(xi)
                if whole
                else sliding_window_inference(
                    xi,
                    tuple(int(p) for p in patch_size),
                    batch_size,
                    predictor,
                    overlap=overlap,
                    mode="gaussian",
                )
            )
            assert isinstance(logits, torch.Tensor)
            probs = torch.softmax(logits, dim=1)
            probs = torch.flip(probs, dims) if dims else probs
            total = probs if total is None else total + probs
    assert total is not None
    out = (total / len(combos))[0].numpy()
    crop = (slice(None), *tuple(slice(0, s) for s in arr.shape))
    return np.ascontiguousarray(out[crop])


def postprocess(
    labels: np.ndarray, rules: Mapping[int, Mapping[str, bool]], axis: int | None = None
) -> np.ndarray:
    """Apply per-class rules: keep the largest connected component, fill enclosed holes.

    Holes are filled only where they are background, so one class never overwrites another.

    Example:
        >>> lab = np.zeros((8, 8), np.uint8); lab[1:4, 1:4] = 1; lab[6, 6] = 1; lab[2, 2] = 0
        >>> out = postprocess(lab, {1: {"largest_component": True, "fill_holes": True}})
        >>> int((out == 1).sum())
        9
    """
    out = np.asarray(labels).copy()
    for value, rule in rules.items():
        mask = out == value
        if not mask.any():
            continue
        if rule.get("largest_component"):
            keep = keep_largest(mask)
            out[mask & ~keep] = 0
            mask = keep
        if rule.get("fill_holes"):
            filled = fill_holes(mask, axis=axis)
            out[filled & (out == 0)] = value
    return out
