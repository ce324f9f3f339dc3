"""Torch weights rebuilt from an ONNX export, for bundles that ship their ONNX files only.

A bundle keeps the same (half-precision) weights twice, once per engine; an ensemble shipped
inside the package keeps only its ONNX exports to stay small. The torch engine (large 3D
volumes, fine-tuning, a GPU) still needs a ``state_dict``: :func:`state_from_onnx` reads it
back from the export's initializers, which :func:`~medlabel.models.files.export_onnx` names
after the module's parameters. The few it turns into anonymous constants (PReLU slopes,
GroupNorm scales) are matched through the order in which the network calls their modules,
and :func:`check_same_outputs` runs both engines on one input so that a wrong match cannot
pass silently.

Example:
    >>> import pathlib, tempfile, torch
    >>> from medlabel.models.files import export_onnx
    >>> from torch.nn import Conv2d, PReLU, Sequential
    >>> def small():
    ...     return Sequential(Conv2d(1, 4, 3), PReLU(), Conv2d(4, 2, 1))
    >>> net = small()
    >>> example = torch.randn(1, 1, 8, 8)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.onnx"
    >>> export_onnx(net.eval(), example, path)
    >>> fresh = small()
    >>> _ = fresh.load_state_dict(state_from_onnx(path, fresh, example))
    >>> check_same_outputs(fresh.eval(), path, example) < 1e-5
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["check_same_outputs", "state_from_onnx"]

#: The suffix :func:`~medlabel.models.files.half_weights` gives a weight stored in float16.
_HALF = "__half"


def state_from_onnx(
    path: str | os.PathLike[str], net: torch.nn.Module, example: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of ``net`` whose export is the ONNX file ``path``.

    Weights are found by name, under whichever name the exporter chose for a module that is
    registered under several (MONAI's DynUNet). Weights the exporter turned into anonymous
    constants (PReLU slopes, GroupNorm scales) are paired in order: the order in which a
    forward pass of ``example`` calls their modules against the order in which the graph's
    nodes use such constants, of the same size. A forward pass also shows which modules
    inference never calls (deep-supervision heads): the export has no weights for them, and
    they keep ``net``'s own values. Check the result with :func:`check_same_outputs`.

    Raises:
        ValueError: a parameter or buffer that inference uses has no value in the export
            (the file belongs to another network).
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    values = {
        init.name.removesuffix(_HALF): numpy_helper.to_array(init)
        for init in proto.graph.initializer
    }
    calls = _called_modules(net, example)
    called = {id(module) for module in calls}
    tensors: dict[str, torch.Tensor] = dict(net.named_parameters(remove_duplicate=False))
    tensors.update(net.named_buffers(remove_duplicate=False))
    aliases: dict[int, list[str]] = {}
    for name, tensor in tensors.items():
        aliases.setdefault(id(tensor), []).append(name)
    template = net.state_dict()
    state: dict[str, torch.Tensor] = {}
    unnamed: list[tuple[str, torch.nn.Module]] = []  # (key, the module that holds it)
    for key, like in template.items():
        names = aliases.get(id(tensors[key]), [key]) if key in tensors else [key]
        found = [values[n] for n in names if n in values and values[n].size == like.numel()]
        owner = net.get_submodule(key.rpartition(".")[0]) if "." in key else net
        if found:
            state[key] = _tensor(found[0], like)
        elif key.endswith("num_batches_tracked") or id(owner) not in called:
            state[key] = like  # not used by inference
        else:
            unnamed.append((key, owner))
    order = {id(module): k for k, module in reversed(list(enumerate(calls)))}
    unnamed.sort(key=lambda pair: order[id(pair[1])])  # stable: a weight before its bias
    constants = _anonymous_uses(proto, values, set(tensors))
    missing = []
    for key, _owner in unnamed:
        size = template[key].numel()
        while constants and constants[0].size != size:
            constants.pop(0)
        if not constants:
            missing.append(key)
            continue
        state[key] = _tensor(constants.pop(0), template[key])
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise ValueError(f"{Path(path).name} holds no value for {shown}: not this network's export")
    return state


def _tensor(value: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.array(value).reshape(like.shape)).to(like.dtype)


def _called_modules(net: torch.nn.Module, example: torch.Tensor) -> list[torch.nn.Module]:
    """The modules a forward pass of ``net`` (in eval mode) calls, in the order they start."""
    calls: list[torch.nn.Module] = []
    hooks = [
        module.register_forward_pre_hook(lambda module, _args: calls.append(module))
        for module in net.modules()
    ]
    try:
        with torch.no_grad():
            net.eval()(example)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _anonymous_uses(proto: Any, values: dict[str, np.ndarray], known: set[str]) -> list[np.ndarray]:
    """Floating-point constants not named after a parameter or buffer (``known``), once per
    use, in node order.

    The constant scale and shift that the exporter feeds ``InstanceNormalization`` when it
    decomposes a GroupNorm are not weights and are left out; a weight stored in half
    precision is reached through its ``Cast``.
    """
    casts = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Cast"}
    uses = []
    for node in proto.graph.node:
        if node.op_type == "Cast":
            continue
        for position, name in enumerate(node.input):
            if node.op_type == "InstanceNormalization" and position > 0:
                continue
            name = casts.get(name, name).removesuffix(_HALF)
            value = values.get(name)
            if value is not None and name not in known and value.dtype.kind == "f":
                uses.append(value)
    return uses


def check_same_outputs(
    net: torch.nn.Module, path: str | os.PathLike[str], example: torch.Tensor
) -> float:
    """Largest difference between ``net`` and ONNX Runtime on ``path`` for ``example``,
    relative to the largest output magnitude.

    Example: see the module docstring.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: example.numpy().astype(np.float32)}
    reference = session.run(None, feed)[0]
    with torch.no_grad():
        out = net.eval()(example).float().numpy()
    if out.shape != reference.shape:
        return float("inf")
    return float(np.abs(out - reference).max() / max(1.0, float(np.abs(reference).max())))
