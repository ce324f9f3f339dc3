"""Training devices: auto follows torch's view of CUDA; wrong names fail clearly."""

from __future__ import annotations

import pytest
import torch

from medlabel.classify.train import TrainConfig
from medlabel.devices import native_bf16, resolve_device
from medlabel.errors import MedlabelError
from medlabel.segment.train import SegTrainConfig


def test_auto_follows_cuda_and_cpu_is_always_there() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert TrainConfig(device="cpu").torch_device().type == "cpu"
    assert SegTrainConfig(device="cpu").torch_device().type == "cpu"


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x"])
def test_unknown_devices_are_named_in_the_error(name: str) -> None:
    with pytest.raises(MedlabelError, match=f"unknown device '{name}'"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_missing_gpu_says_so() -> None:
    with pytest.raises(MedlabelError, match="sees no CUDA GPU"):
        SegTrainConfig(device="cuda").torch_device()


def test_native_bf16_decides_the_segmentation_default() -> None:
    cpu = torch.device("cpu")
    assert SegTrainConfig(device="cpu").use_bf16() is native_bf16(cpu)
    assert SegTrainConfig(device="cpu", bf16=False).use_bf16() is False
