"""One training step in float32 against bfloat16 autocast, for the networks medlabel trains.

A step is what the training loops do: forward pass (autocast or not), loss in float32,
backward pass, AdamW update. Each network is timed both ways in the same run, on random
inputs of the shapes its plan or recipe uses; the ratio is what ``bf16`` buys on this CPU.
Autocast pays off only where the CPU computes bfloat16 natively (AVX-512 BF16 or AMX).

Run: ``python benchmarks/bench_training_step.py [--steps 4] [--warmup 2] [--limit N]`` (about 4
minutes on 2 cores with the defaults; ``--steps 1 --warmup 1 --limit 1`` for a quick check).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, plural, save_results, timeit
from medlabel.classify.networks import build_network
from medlabel.devices import bf16_autocast, native_bf16
from medlabel.segment.networks import build_segmentation_network

# name, builder, batch shape, classes (segmentation networks get a label per voxel)
CASES: list[tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], int]] = [
    (
        "segment 2D unet 16-128 (JSRT plan), 12 x 224^2",
        lambda: build_segmentation_network(
            "unet", 2, 1, 4, channels=[16, 32, 64, 128, 128, 128], strides=[2] * 5
        ),
        (12, 1, 224, 224),
        4,
    ),
    (
        "segment 3D unet 16-128 (hippocampus plan), 9 x 40x56x40",
        lambda: build_segmentation_network(
            "unet", 3, 1, 3, channels=[16, 32, 64, 128], strides=[2] * 3
        ),
        (9, 1, 40, 56, 40),
        3,
    ),
    (
        "segment 3D unet 32-256 (--width 32), 9 x 40x56x40",
        lambda: build_segmentation_network(
            "unet", 3, 1, 3, channels=[32, 64, 128, 256], strides=[2] * 3
        ),
        (9, 1, 40, 56, 40),
        3,
    ),
    (
        "segment 2D unet 16-128 --full-res, 12 x 224^2",
        lambda: build_segmentation_network(
            "unet", 2, 1, 4, channels=[16, 32, 64, 128, 128, 128, 128], strides=[1] + [2] * 5
        ),
        (12, 1, 224, 224),
        4,
    ),
    (
        "segment 3D unet 16-128 --full-res, 9 x 40x56x40",
        lambda: build_segmentation_network(
            "unet", 3, 1, 3, channels=[16, 32, 64, 128, 128], strides=[1] + [2] * 3
        ),
        (9, 1, 40, 56, 40),
        3,
    ),
    (
        "segment 3D dynunet 16-128 + deep supervision (nnU-Net topology), 9 x 40x56x40",
        lambda: build_segmentation_network(
            "dynunet", 3, 1, 3, channels=[16, 32, 64, 128], strides=[2] * 3, deep_supervision=True
        ),
        (9, 1, 40, 56, 40),
        3,
    ),
    (
        "segment 2D dynunet 16-128 + deep supervision (nnU-Net topology), 12 x 224^2",
        lambda: build_segmentation_network(
            "dynunet",
            2,
            1,
            4,
            channels=[16, 32, 64, 128, 128, 128],
            strides=[2] * 5,
            deep_supervision=True,
        ),
        (12, 1, 224, 224),
        4,
    ),
    (
        "classify compact, 64 x 28^2",
        lambda: build_network("compact", spatial_dims=2, in_channels=1, num_classes=2, width=32),
        (64, 1, 28, 28),
        2,
    ),
    (
        "classify resnet18, 32 x 128^2",
        lambda: build_network("resnet18", spatial_dims=2, in_channels=1, num_classes=2),
        (32, 1, 128, 128),
        2,
    ),
]


def step_time(
    net: torch.nn.Module,
    shape: tuple[int, ...],
    classes: int,
    bf16: bool,
    steps: int = 4,
    warmup: int = 2,
) -> float:
    """Median seconds of one training step (``steps`` timed after ``warmup`` untimed)."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(shape)
    with torch.no_grad():
        dense = net.eval()(x[:1]).ndim == len(shape)  # one output per voxel: segmentation
    net.train()
    y = torch.randint(0, classes, (shape[0], *shape[2:]) if dense else (shape[0],))

    def step() -> None:
        with bf16_autocast(torch.device("cpu"), bf16):
            out = net(x)
        # deeply supervised networks stack their heads on dimension 1: each one is trained
        heads = torch.unbind(out, 1) if out.ndim > len(shape) else (out,)
        loss = sum(torch.nn.functional.cross_entropy(h.float(), y) for h in heads)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return timeit(step, repeat=steps, warmup=warmup)["median_s"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--steps", type=int, default=4, help="timed steps per network and mode")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"only the first N of the {len(CASES)} networks (default: all)",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or (args.limit is not None and args.limit < 1):
        parser.error("--steps and --limit must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    """Time every network; ``argv`` as on the command line (``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    native = native_bf16(torch.device("cpu"))
    rows: dict[str, Any] = {
        "machine": machine(),
        "native_bf16": native,
        "steps": args.steps,
        "warmup": args.warmup,
        "cases": [],
        "command": invocation(),
    }
    for name, build, shape, classes in CASES[: args.limit]:
        net = build()
        fp32 = step_time(net, shape, classes, False, args.steps, args.warmup)
        bf16 = step_time(net, shape, classes, True, args.steps, args.warmup)
        rows["cases"].append({"network": name, "fp32_s": fp32, "bf16_s": bf16})
        print(f"{name}: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s ({fp32 / bf16:.2f}x)", flush=True)
    lines = [
        f"# Training step, float32 vs bfloat16 autocast, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores; native bfloat16: "
        f"{'yes' if native else 'no'}. Median of {plural(args.steps, 'step')} after "
        f"{plural(args.warmup, 'warm-up step')} (forward, float32 loss, backward, AdamW).",
        "",
        "| network, batch | float32 | bfloat16 autocast | speed-up |",
        "|---|---|---|---|",
    ]
    for r in rows["cases"]:
        lines.append(
            f"| {r['network']} | {r['fp32_s']:.3f} s | {r['bf16_s']:.3f} s | "
            f"{r['fp32_s'] / r['bf16_s']:.2f}x |"
        )
    lines += ["", f"Command: `{rows['command']}`."]
    save_results("training-step", rows, lines)


if __name__ == "__main__":
    main()
