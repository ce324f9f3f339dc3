"""Inference speed and peak memory per volume: medlabel's pipeline vs a plain MONAI pipeline.

Both run the same trained 3D network (default: the bundled ``mri-hippocampus``) on the same
volumes: a hippocampus case, and the abdominal CT example (there only speed and memory mean
anything: the network was not trained on CT). Each run happens in a fresh process, so peak
resident memory (``ru_maxrss``) is that run's own; the increase over the process's footprint
right after imports is reported too.

* medlabel: ``SegmentationBundle.predict`` (plan preprocessing, sliding windows, post-processing,
  mapping back to the input grid) with its defaults (engine and precision ``auto``: torch
  under bfloat16 autocast on a CPU that computes in bfloat16 natively), and forced to ONNX
  Runtime, torch in float32 or torch in bfloat16, so the table shows what each choice buys;
* MONAI: ``LoadImaged -> EnsureChannelFirstd -> Spacingd -> NormalizeIntensityd``, torch
  ``sliding_window_inference`` (same patch, overlap 0.5, Gaussian), ``Invertd`` back to the
  input grid, argmax.

A user who segments one image pays for the process start as well, so the run also times one
whole ``medlabel segment`` command on a JSRT radiograph and a hippocampus crop: its default
for one image (ONNX Runtime, no torch), the same with torch imported first, and torch in
bfloat16 (where the CPU has it natively; forced bfloat16 is left out elsewhere).

Faster is only worth having if the masks stay the same, so the run also segments the held-out
test cases of ``bench_hippocampus.py`` (40 hippocampus crops) and ``bench_jsrt.py`` (40 JSRT
radiographs) with the bundled ``mri-hippocampus`` and ``cxr-lungs`` in float32 and in bfloat16,
both with mirroring TTA (as ``bench_hippocampus.py`` tests by default; ``bench_jsrt.py`` tests
without TTA, so the JSRT figures here are not its test figures), and reports both test Dice
figures and the Dice between the two precisions' masks.

Every timing is the best of ``--repeat`` runs after one untimed warm-up run of the same
pipeline or command.

Run: ``python benchmarks/bench_seg_inference.py [--bundle mri-hippocampus] [--repeat 3]``; a
CPU without native bfloat16 writes ``seg-inference-no-bf16-<date>``, without the forced
bfloat16 runs and the precision comparison.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


#: pipeline -> (engine, precision) of medlabel's runs
SETTINGS = {
    "medlabel": ("auto", "auto"),
    "medlabel-onnx": ("onnx", "fp32"),
    "medlabel-torch": ("torch", "fp32"),
    "medlabel-bf16": ("torch", "bf16"),
}


def run_medlabel(bundle_name: str, path: str, repeat: int, pipeline: str) -> dict[str, Any]:
    from medlabel.io import read_image
    from medlabel.segment.bundle import load_segmentation_bundle
    from medlabel.segment.preprocessing import to_network

    engine, precision = SETTINGS[pipeline]
    bundle = load_segmentation_bundle(bundle_name, engine=engine, precision=precision)
    base = _rss_mb()
    bundle.predict(read_image(path))  # untimed warm-up (sessions, allocator, file cache)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        seg = bundle.predict(read_image(path))
        times.append(time.perf_counter() - start)
    chosen = bundle.engine_for(to_network(read_image(path), bundle.plan)[0].shape)
    return {
        "seconds": min(times),
        "peak_mb": _rss_mb(),
        "increase_mb": _rss_mb() - base,
        "shape": list(seg.array.shape),
        "engine": f"{chosen[0]}{' bf16' if chosen[0] == 'torch' and bundle.bf16 else ''}, "
        f"batch {chosen[1]}",
    }


def run_monai(bundle_name: str, path: str, repeat: int) -> dict[str, Any]:
    import torch
    from monai.data import MetaTensor
    from monai.inferers import sliding_window_inference
    from monai.transforms import (
        AsDiscreted,
        Compose,
        EnsureChannelFirstd,
        Invertd,
        LoadImaged,
        NormalizeIntensityd,
        Spacingd,
    )

    from medlabel.segment.bundle import load_segmentation_bundle

    bundle = load_segmentation_bundle(bundle_name, engine="torch")
    net = bundle.network()
    plan = bundle.plan
    pre = Compose(
        [
            LoadImaged(keys="image"),
            EnsureChannelFirstd(keys="image"),
            Spacingd(keys="image", pixdim=plan.target, mode="bilinear"),
            NormalizeIntensityd(keys="image"),
        ]
    )
    post = Compose(
        [
            Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False),
            AsDiscreted(keys="pred", argmax=True),
        ]
    )
    base = _rss_mb()
    times = []
    for k in range(repeat + 1):  # the first run is an untimed warm-up
        start = time.perf_counter()
        data = pre({"image": path})
        image = data["image"]
        with torch.no_grad():
            logits = sliding_window_inference(
                image[None], plan.patch_size[::-1], 4, net, overlap=0.5, mode="gaussian"
            )[0]
        # the prediction carries the image's metadata and transform trace, as MONAI's
        # tutorials do, so that Invertd can undo the resampling
        data["pred"] = MetaTensor(
            logits.as_tensor() if isinstance(logits, MetaTensor) else logits,
            meta=image.meta,
            applied_operations=image.applied_operations,
        )
        out = post(data)
        if k:
            times.append(time.perf_counter() - start)
    return {
        "seconds": min(times),
        "peak_mb": _rss_mb(),
        "increase_mb": _rss_mb() - base,
        "shape": list(out["pred"].shape),
    }


PIPELINES = (*SETTINGS, "monai")


def _dice(a: Any, b: Any, c: int) -> float:
    import numpy as np

    x, y = np.asarray(a.array) == c, np.asarray(b.array) == c
    total = int(x.sum() + y.sum())
    return 1.0 if total == 0 else 2.0 * float((x & y).sum()) / total


def precision_fidelity(data: Path) -> dict[str, Any]:
    """Test Dice in float32 and in bfloat16, and the Dice between the two, on held-out cases."""
    import numpy as np

    from medlabel.segment.bundle import load_segmentation_bundle
    from medlabel.segment.dataset import open_segmentation_dataset
    from seg_common import hold_out

    sets = {
        "mri-hippocampus": ("msd-hippocampus", "1=anterior,2=posterior"),
        "cxr-lungs": ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart"),
    }
    out: dict[str, Any] = {}
    for name, (folder, labels) in sets.items():
        ds = hold_out(open_segmentation_dataset(data / folder, labels), 40)
        cases = [ds.load(i) for i in ds.indices("test")]
        masks: dict[str, list[Any]] = {}
        seconds: dict[str, float] = {}
        for precision in ("fp32", "bf16"):
            bundle = load_segmentation_bundle(name, engine="torch", precision=precision)
            bundle.predict(cases[0][0], tta=True)  # warm-up
            start = time.perf_counter()
            masks[precision] = [bundle.predict(image, tta=True) for image, _ in cases]
            seconds[precision] = time.perf_counter() - start
        row: dict[str, Any] = {"n": len(cases), "seconds": seconds, "classes": {}}
        for c, cname in ds.classes.items():
            dice = {
                p: [_dice(m, t, c) for m, (_, t) in zip(ms, cases, strict=True)]
                for p, ms in masks.items()
            }
            between = [_dice(a, b, c) for a, b in zip(masks["bf16"], masks["fp32"], strict=True)]
            row["classes"][cname] = {
                "dice_fp32": float(np.mean(dice["fp32"])),
                "dice_bf16": float(np.mean(dice["bf16"])),
                "worst_fp32": float(np.min(dice["fp32"])),
                "worst_bf16": float(np.min(dice["bf16"])),
                "between_mean": float(np.mean(between)),
                "between_min": float(np.min(between)),
            }
        out[name] = row
        print(name, row, flush=True)
    return out


def command_times(data: Path, repeat: int, bf16: bool) -> dict[str, Any]:
    """Seconds for one whole ``medlabel segment`` command (process start, imports, reading,
    predicting, writing), best of ``repeat`` after one untimed warm-up run, on an input that
    fits one window: with its default for one image (ONNX Runtime in float32, which never
    imports torch), the same command with torch imported first (what every run paid before
    the ONNX path stopped importing it), and torch in bfloat16 (``--precision bf16``, only
    where the CPU computes in it natively)."""
    import tempfile

    cases = {
        "JSRT radiograph, cxr-lungs": (
            "cxr-lungs",
            sorted((data / "jsrt-lungs-224" / "images").glob("*.png"))[0],
        ),
        "hippocampus_001, mri-hippocampus": (
            "mri-hippocampus",
            data / "msd-hippocampus" / "imagesTr" / "hippocampus_001.nii.gz",
        ),
    }
    with_torch = (
        "import sys, torch; from medlabel.cli import main; sys.argv[0] = 'medlabel'; main()"
    )
    variants = {
        "default": ([sys.executable, "-m", "medlabel.cli"], []),
        "torch_first": ([sys.executable, "-c", with_torch], []),
    }
    if bf16:
        variants["bf16"] = ([sys.executable, "-m", "medlabel.cli"], ["--precision", "bf16"])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (bundle, path) in cases.items():
            row = {}
            for variant, (start, extra) in variants.items():
                target = Path(tmp) / f"mask{''.join(path.suffixes)}"
                command = [*start, "segment", str(path), "--model", bundle, *extra]
                times = []
                for k in range(repeat + 1):  # the first run is an untimed warm-up
                    begin = time.perf_counter()
                    subprocess.run(
                        [*command, "--out", str(target)], capture_output=True, check=True
                    )
                    if k:
                        times.append(time.perf_counter() - begin)
                row[variant] = min(times)
            out[name] = row
            print(name, row, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--bundle", default="mri-hippocampus", help="a 3D segmentation bundle")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs (after one untimed warm-up run)"
    )
    parser.add_argument("--one", nargs=2, metavar=("PIPELINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, path = args.one
        if kind == "monai":
            result = run_monai(args.bundle, path, args.repeat)
        else:
            result = run_medlabel(args.bundle, path, args.repeat, kind)
        print(json.dumps(result))
        return
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    data = require_data(
        "msd-hippocampus/imagesTr/hippocampus_001.nii.gz",
        "msd-hippocampus/labelsTr",
        "ct-abdomen/example_ct_sm.nii.gz",
        "jsrt-lungs-224/images",
        "jsrt-lungs-224/masks",
    )
    cases = {
        "hippocampus_001": data / "msd-hippocampus" / "imagesTr" / "hippocampus_001.nii.gz",
        "ct-abdomen example": data / "ct-abdomen" / "example_ct_sm.nii.gz",
    }
    import torch

    from medlabel.devices import native_bf16

    rows: dict[str, Any] = {
        "machine": machine(),
        "native_bf16": native_bf16(torch.device("cpu")),
        "bundle": args.bundle,
        "repeat": args.repeat,
        "cases": {},
    }
    for name, path in cases.items():
        rows["cases"][name] = {}
        # forced bfloat16 on a CPU that only emulates it is slow and never chosen: left out
        for pipeline in [p for p in PIPELINES if rows["native_bf16"] or p != "medlabel-bf16"]:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--bundle",
                    args.bundle,
                    "--repeat",
                    str(args.repeat),
                    "--one",
                    pipeline,
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rows["cases"][name][pipeline] = json.loads(out.stdout.strip().splitlines()[-1])
            print(name, pipeline, rows["cases"][name][pipeline], flush=True)
    rows["commands"] = command_times(data, args.repeat, rows["native_bf16"])
    rows["fidelity"] = precision_fidelity(data) if rows["native_bf16"] else None
    rows["command"] = invocation()
    write(rows)


def write(rows: dict[str, Any]) -> None:
    repeat = rows.get("repeat")
    best = (
        "Best of repeated runs"  # results from before the count was recorded
        if not repeat
        else f"Best of {repeat} runs after one untimed warm-up run"
        if repeat > 1
        else "One run after one untimed warm-up run"
    )
    lines = [
        f"# Segmentation inference per volume, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores; native "
        f"bfloat16: {'yes' if rows.get('native_bf16') else 'no'}. Network: bundle "
        f"`{rows['bundle']}`. {best}; peak resident memory of a fresh process.",
        "",
        "| volume | medlabel (s), defaults | forced ONNX (s) | forced torch fp32 (s) | "
        "forced torch bf16 (s) | MONAI, fp32 (s) | speed-up vs MONAI | "
        "medlabel peak / increase (MB) | MONAI peak / increase (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows["cases"].items():
        m, b = r["medlabel"], r["monai"]
        o, t, h = r["medlabel-onnx"], r["medlabel-torch"], r.get("medlabel-bf16")
        bf16 = f"{h['seconds']:.3f}" if h else "- (emulated)"
        lines.append(
            f"| {name} {tuple(m['shape'])} | {m['seconds']:.3f} ({m['engine']}) | "
            f"{o['seconds']:.3f} | {t['seconds']:.3f} | {bf16} | "
            f"{b['seconds']:.3f} | {b['seconds'] / m['seconds']:.2f}x | "
            f"{m['peak_mb']:.0f} / {m['increase_mb']:.0f} | "
            f"{b['peak_mb']:.0f} / {b['increase_mb']:.0f} |"
        )
    if rows.get("commands"):
        lines += [
            "",
            "One whole `medlabel segment` command (process start, imports, reading, writing), "
            f"{best[0].lower()}{best[1:]}: its default for one image that fits one window (float32 "
            "on ONNX Runtime, which never imports torch), the same with torch imported first "
            "(as every run did before 2026-12-07), and `--precision bf16` (torch):",
            "",
            "| input | default (s) | torch imported first (s) | speed-up | --precision bf16 (s) |",
            "|---|---|---|---|---|",
        ]
        for name, c in rows["commands"].items():
            forced = f"{c['bf16']:.2f}" if "bf16" in c else "- (emulated)"
            lines.append(
                f"| {name} | {c['default']:.2f} | {c['torch_first']:.2f} | "
                f"{c['torch_first'] / c['default']:.2f}x | {forced} |"
            )
    if rows.get("fidelity"):
        lines += [
            "",
            "Same masks? Held-out test cases (40 each, as `bench_hippocampus.py` and "
            "`bench_jsrt.py` hold them out), mirroring TTA on both (`bench_jsrt.py` itself tests "
            "without it), torch in float32 and in bfloat16:",
            "",
            "| bundle | class | test Dice fp32 | test Dice bf16 | worst fp32 / bf16 | "
            "Dice bf16 vs fp32 mean (min) | seconds fp32 / bf16 |",
            "|---|---|---|---|---|---|---|",
        ]
        for bundle, f in rows["fidelity"].items():
            sec = f"{f['seconds']['fp32']:.1f} / {f['seconds']['bf16']:.1f}"
            for cname, c in f["classes"].items():
                lines.append(
                    f"| {bundle} | {cname} | {c['dice_fp32']:.4f} | {c['dice_bf16']:.4f} | "
                    f"{c['worst_fp32']:.4f} / {c['worst_bf16']:.4f} | "
                    f"{c['between_mean']:.4f} ({c['between_min']:.4f}) | {sec} |"
                )
                sec = ""
    command = rows.get("command", "python benchmarks/bench_seg_inference.py")
    lines += ["", f"Command: `{command}`."]
    # a CPU without native bfloat16 gets its own file: its figures differ in kind
    save_results("seg-inference" + ("" if rows.get("native_bf16") else "-no-bf16"), rows, lines)


if __name__ == "__main__":
    main()
