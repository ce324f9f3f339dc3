"""Inference speed and peak memory per volume: medlabel's pipeline vs a plain MONAI pipeline.

Both run the same trained 3D network (default: the bundled ``mri-hippocampus``) on the same
volumes: a hippocampus case, and the abdominal CT example (there only speed and memory mean
anything: the network was not trained on CT). Each run happens in a fresh process, so peak
resident memory (``ru_maxrss``) is that run's own; the increase over the process's footprint
right after imports is reported too.

* medlabel: ``SegmentationBundle.predict`` (plan preprocessing, sliding windows, post-processing,
  mapping back to the input grid) with its default engine ``auto``, and forced to ONNX Runtime
  or torch, so the table shows what the automatic choice buys;
* MONAI: ``LoadImaged -> EnsureChannelFirstd -> Spacingd -> NormalizeIntensityd``, torch
  ``sliding_window_inference`` (same patch, overlap 0.5, Gaussian), ``Invertd`` back to the
  input grid, argmax.

Run: ``python benchmarks/bench_seg_inference.py [--bundle mri-hippocampus] [--repeat 3]``.
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

from common import machine, save_results, shared_data


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_medlabel(bundle_name: str, path: str, repeat: int, engine: str = "auto") -> dict[str, Any]:
    from medlabel.io import read_image
    from medlabel.segment.bundle import load_segmentation_bundle
    from medlabel.segment.preprocessing import to_network

    bundle = load_segmentation_bundle(bundle_name, engine=engine)
    base = _rss_mb()
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
        "engine": f"{chosen[0]}, batch {chosen[1]}",
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
    for _ in range(repeat):
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
        times.append(time.perf_counter() - start)
    return {
        "seconds": min(times),
        "peak_mb": _rss_mb(),
        "increase_mb": _rss_mb() - base,
        "shape": list(out["pred"].shape),
    }


PIPELINES = ("medlabel", "medlabel-onnx", "medlabel-torch", "monai")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", default="mri-hippocampus")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--one", nargs=2, metavar=("PIPELINE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, path = args.one
        if kind == "monai":
            result = run_monai(args.bundle, path, args.repeat)
        else:
            engine = kind.partition("-")[2] or "auto"
            result = run_medlabel(args.bundle, path, args.repeat, engine)
        print(json.dumps(result))
        return
    data = shared_data()
    if data is None:
        print("needs ../shared/data (msd-hippocampus, ct-abdomen)")
        return
    cases = {
        "hippocampus_001": data / "msd-hippocampus" / "imagesTr" / "hippocampus_001.nii.gz",
        "ct-abdomen example": data / "ct-abdomen" / "example_ct_sm.nii.gz",
    }
    rows: dict[str, Any] = {"machine": machine(), "bundle": args.bundle, "cases": {}}
    for name, path in cases.items():
        rows["cases"][name] = {}
        for pipeline in PIPELINES:
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
    write(rows)


def write(rows: dict[str, Any]) -> None:
    lines = [
        f"# Segmentation inference per volume, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores. Network: bundle "
        f"`{rows['bundle']}`. Best of repeated runs; peak resident memory of a fresh process.",
        "",
        "| volume | medlabel (s), default engine | forced ONNX (s) | forced torch (s) | "
        "MONAI (s) | speed-up vs MONAI | medlabel peak / increase (MB) | "
        "MONAI peak / increase (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows["cases"].items():
        m, b = r["medlabel"], r["monai"]
        o, t = r["medlabel-onnx"], r["medlabel-torch"]
        lines.append(
            f"| {name} {tuple(m['shape'])} | {m['seconds']:.2f} ({m['engine']}) | "
            f"{o['seconds']:.2f} | {t['seconds']:.2f} | {b['seconds']:.2f} | "
            f"{b['seconds'] / m['seconds']:.2f}x | {m['peak_mb']:.0f} / {m['increase_mb']:.0f} | "
            f"{b['peak_mb']:.0f} / {b['increase_mb']:.0f} |"
        )
    lines += ["", "Command: `python benchmarks/bench_seg_inference.py`."]
    save_results("seg-inference", rows, lines)


if __name__ == "__main__":
    main()
