"""Inference: sliding windows with Gaussian blending, mirroring TTA, post-processing.

Works with any predictor that maps a ``(B, 1, *patch)`` float32 array to ``(B, K+1, *patch)``
logits: a torch module wrapped by :func:`torch_predictor`, or an ONNX Runtime session wrapped
by :func:`onnx_predictor`. An input that fits one window never touches torch, so ONNX Runtime
predicts without importing it (over a second on a small CPU); torch and MONAI come in only
to blend several windows.

Example:
    >>> import numpy as np
    >>> net = lambda x: np.concatenate([x * 0 + 1, x * 0], axis=1)  # always "background"
    >>> probs = predict_probabilities(net, np.zeros((40, 30), np.float32), patch_size=(32, 32))
    >>> probs.shape, round(float(probs[0].min()), 3)  # softmax of logits (1, 0)
    ((2, 40, 30), 0.731)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medlabel.segment.blocks import fill_holes, keep_largest

if TYPE_CHECKING:
    import torch

__all__ = [
    "class_probabilities",
    "onnx_predictor",
    "postprocess",
    "predict_probabilities",
    "slice_predictor",
    "torch_predictor",
]

Predictor = Callable[[np.ndarray], np.ndarray]


def onnx_predictor(session: Any) -> Predictor:
    """Wrap an ONNX Runtime session as an array-to-array predictor."""

    def run(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]
        return np.asarray(out, np.float32)

    return run


def torch_predictor(net: torch.nn.Module, *, bf16: bool = False) -> Predictor:
    """``net`` as a predictor that takes and returns float32 arrays wherever ``net`` lives
    (the CPU or a GPU); ``bf16`` runs it under bfloat16 autocast (weights stay float32).

    Example:
        >>> import torch
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> torch_predictor(net, bf16=True)(np.zeros((1, 1, 8, 8), np.float32)).dtype
        dtype('float32')
    """
    import torch

    from medlabel.devices import bf16_autocast

    device = next(net.parameters()).device

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad(), bf16_autocast(device, bf16):
            inputs = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)
            return net(inputs).float().cpu().numpy()

    return run


def slice_predictor(predictor: Predictor, slice_axis: int | None) -> Predictor:
    """Let a 2D predictor take ``(B, 1, *patch)`` windows that are one slice thick.

    With ``slice_axis=None`` the predictor is returned unchanged.

    Example:
        >>> net = lambda x: np.concatenate([x, -x], axis=1)  # a "2D network"
        >>> slice_predictor(net, 0)(np.zeros((2, 1, 1, 8, 8), np.float32)).shape
        (2, 2, 1, 8, 8)
    """
    if slice_axis is None:
        return predictor
    dim = slice_axis + 2

    def run(x: np.ndarray) -> np.ndarray:
        return np.expand_dims(predictor(np.squeeze(x, dim)), dim)

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
    inputs = np.ascontiguousarray(padded)[None, None]
    combos = [
        c for r in range(len(mirror_axes) + 1) for c in itertools.combinations(mirror_axes, r)
    ]
    whole = tuple(padded.shape) == tuple(int(p) for p in patch_size)  # one window: no blending
    logits_of = predictor if whole else _blended(predictor, patch_size, batch_size, overlap)
    total: np.ndarray | None = None
    for flips in combos:
        axes = tuple(a + 2 for a in flips)
        xi = np.ascontiguousarray(np.flip(inputs, axes)) if axes else inputs
        probs = class_probabilities(logits_of(xi))
        probs = np.flip(probs, axes) if axes else probs
        total = probs if total is None else total + probs
    assert total is not None
    out = (total / len(combos))[0]
    crop = (slice(None), *tuple(slice(0, s) for s in arr.shape))
    return np.ascontiguousarray(out[crop], np.float32)


def class_probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (axis 1 of ``(B, K+1, ...)`` logits), in place where the
    logits allow it: a CT volume's maps take hundreds of MB, and out-of-place arithmetic would
    need three copies of them.

    Example:
        >>> class_probabilities(np.zeros((1, 2, 3), np.float32))[0, :, 0].tolist()
        [0.5, 0.5]
    """
    out = np.require(logits, np.float32, ["W"])
    out -= out.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _blended(
    predictor: Predictor, patch_size: Sequence[int], batch_size: int, overlap: float
) -> Predictor:
    """``predictor`` over sliding windows with Gaussian blending (MONAI's inferer; importing
    torch and MONAI takes seconds, so only inputs larger than one window pay for it)."""
    import torch
    from monai.inferers import sliding_window_inference

    def windows(t: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(predictor(t.numpy()))

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = sliding_window_inference(
                torch.from_numpy(x),
                tuple(int(p) for p in patch_size),
                batch_size,
                windows,
                overlap=overlap,
                mode="gaussian",
            )
        assert isinstance(logits, torch.Tensor)
        return logits.numpy()

    return run


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
