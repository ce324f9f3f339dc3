"""Where training runs: the CPU by default, a CUDA GPU when there is one or when asked.

torch is imported only where a function needs it: naming the CPU (:func:`device_name`) must
not cost the second or more that importing torch takes on a small CPU, because ONNX Runtime
predicts without it.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    medlabel.errors.MedlabelError: unknown device 'gpu': use auto, cpu or cuda[:N]
    >>> device_name("cpu")
    'cpu'
    >>> import torch
    >>> native_bf16(torch.device("cpu")) in (True, False)
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medlabel.errors import MedlabelError

if TYPE_CHECKING:
    import torch

__all__ = ["bf16_autocast", "device_name", "native_bf16", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (a CUDA GPU when torch sees one, else the CPU), ``"cpu"`` or ``"cuda[:N]"``.

    Raises:
        MedlabelError: an unknown name, or a GPU that torch cannot see.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MedlabelError(None, f"unknown device {name!r}: use auto, cpu or cuda[:N]") from None
    if device.type not in ("cpu", "cuda"):
        raise MedlabelError(None, f"unknown device {name!r}: use auto, cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MedlabelError(None, f"device {name!r} asked for, but torch sees no CUDA GPU here")
    return device


def device_name(name: str) -> str:
    """:func:`resolve_device` as a string (``"cpu"``, ``"cuda:0"``...), checked the same way;
    ``"cpu"`` needs no torch.

    Raises:
        MedlabelError: an unknown name, or a GPU that torch cannot see.
    """
    return "cpu" if name == "cpu" else str(resolve_device(name))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively, so that autocast speeds training up.

    CPUs need AVX-512 BF16 or AMX (elsewhere bfloat16 is emulated and slower than float32);
    CUDA GPUs need compute capability 8.0 or more.
    """
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def bf16_autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """The context a training forward pass runs in: bfloat16 autocast when ``enabled``
    (weights stay float32; cast the output with ``.float()`` before the loss)."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
