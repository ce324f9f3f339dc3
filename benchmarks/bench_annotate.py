"""Throughput of ``medlabel annotate`` vs a straightforward MONAI + PyTorch loop, in one run.

Three archives from ``../shared/data``, each given to the job as a CSV list (nothing copied):

* **chest X-rays**: Kermany 224 px JPEGs (both classes), models ``cxr-pneumonia`` (classify)
  and ``cxr-lungs`` (segment; NIfTI masks). The loop does the same work per image with MONAI
  transforms and the same networks in PyTorch: ``LoadImage`` -> grey -> ``ScaleIntensity`` ->
  ``Resize`` -> classifier (every member); ``Resize`` -> ``NormalizeIntensity`` -> U-Net ->
  softmax -> ``Resize`` back -> argmax -> ``SaveImage``, averaging every member of an
  ensemble, as the job does (``cxr-lungs`` ships its ONNX exports only: PyTorch gets their
  weights through ``SegmentationBundle.network``).
* **hippocampus** volumes with ``mri-hippocampus`` (when that bundle is installed): the loop
  is ``LoadImage`` -> ``EnsureChannelFirst`` -> ``NormalizeIntensity`` ->
  ``sliding_window_inference`` (same patch, overlap 0.5, Gaussian) -> argmax -> ``SaveImage``.
* **CT**: the DICOM series and the abdominal NIfTI with the ``ct-lungs`` and ``ct-bone``
  recipes. MONAI has no rule-based CT recipes, so only medlabel's own time split is given.

The job runs with its defaults (engine and precision `auto`: torch under bfloat16 autocast for
segmentation on a CPU that has it natively; reader threads, batched 2D classification),
then once more on the Ray engine (local Ray, 2 actors) for the X-rays. "Where time goes"
comes from the job's ``summary.json`` (reading runs in background threads, so it overlaps).

Run: ``python benchmarks/bench_annotate.py [--xrays 200] [--volumes 40]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results


def _listing(paths: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "items.csv"
    csv.write_text("path\n" + "".join(f"{p}\n" for p in paths))
    return csv


def _job(listing: Path, out: Path, models: list[str], **kwargs: Any) -> dict[str, Any]:
    from medlabel.annotate.job import annotate

    start = time.perf_counter()
    s = annotate(listing, out, models=models, formats=("nifti",), progress=False, **kwargs)
    seconds = time.perf_counter() - start
    return {
        "items": s.items,
        "done": s.done,
        "failed": s.failed,
        "seconds": seconds,
        "items_per_s": s.items / seconds,
        "timing": s.timing,
    }


def monai_xray_loop(paths: list[Path], out: Path) -> dict[str, Any]:
    """Per image: MONAI transforms, the same classifier and U-Net in PyTorch, NIfTI mask."""
    import nibabel as nib
    import torch
    from monai.transforms import LoadImage, NormalizeIntensity, Resize, ScaleIntensity

    from medlabel.classify.bundle import load_bundle
    from medlabel.segment.bundle import load_segmentation_bundle

    cls = load_bundle("cxr-pneumonia", engine="torch")
    classifiers = [cls.torch_member(i) for i in range(len(cls.meta["members"]))]
    seg_bundle = load_segmentation_bundle("cxr-lungs")
    unet = _unet_members(seg_bundle)
    load = LoadImage(image_only=True, reader="PILReader", reverse_indexing=False)  # (H, W)
    scale = ScaleIntensity(minv=0.0, maxv=255.0)
    cls_size = Resize(tuple(cls.spec.size), mode="area")
    seg_size = Resize(tuple(int(v) for v in seg_bundle.plan.patch_size), mode="area")
    normalize = NormalizeIntensity()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            img = load(str(path))
            grey = img.mean(dim=-1) if img.ndim == 3 else img
            x = grey[None].float()
            batch = cls_size(scale(x))[None]
            p = torch.stack([torch.softmax(c(batch), dim=1) for c in classifiers]).mean(0)
            assert p.shape[1] == 2
            probs = Resize(tuple(grey.shape), mode="bilinear")(unet(normalize(seg_size(x))[None]))
            labels = torch.argmax(probs, dim=0).to(torch.uint8).numpy()
            nib.save(nib.Nifti1Image(labels, np.asarray(img.affine)), out / f"{path.stem}.nii.gz")
    seconds = time.perf_counter() - start
    return {"items": len(paths), "seconds": seconds, "items_per_s": len(paths) / seconds}


def _unet_members(bundle: Any) -> Any:
    """The bundle's networks in PyTorch as one function: a normalised batch -> mean class
    probabilities of every member (``cxr-lungs`` ships ONNX exports only; its torch weights
    are rebuilt from them)."""
    import torch

    nets = [bundle.network(k) for k in range(len(bundle.members))]
    return lambda x: torch.stack([torch.softmax(n(x), 1)[0] for n in nets]).mean(0)


def monai_volume_loop(paths: list[Path], bundle_name: str, out: Path) -> dict[str, Any]:
    """Per volume: MONAI load, normalise, torch sliding window, argmax, save."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.transforms import EnsureChannelFirst, LoadImage, NormalizeIntensity, SaveImage

    from medlabel.segment.bundle import load_segmentation_bundle

    bundle = load_segmentation_bundle(bundle_name, engine="torch")
    net = bundle.network(0)
    load = LoadImage(image_only=True)
    channel = EnsureChannelFirst()
    normalize = NormalizeIntensity()
    save = SaveImage(
        output_dir=str(out), output_postfix="seg", separate_folder=False, print_log=False
    )
    patch = tuple(int(v) for v in bundle.plan.patch_size)[::-1]  # MONAI loads (x, y, z)
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            img = normalize(channel(load(str(path))))
            logits = sliding_window_inference(
                img[None].float(), patch, 4, net, overlap=0.5, mode="gaussian"
            )
            save(torch.argmax(logits[0], dim=0, keepdim=True).to(torch.uint8))
    seconds = time.perf_counter() - start
    return {"items": len(paths), "seconds": seconds, "items_per_s": len(paths) / seconds}


def _child(side: str, listing: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """Run one side in a fresh Python process; wall time includes start-up and model loading."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--one", side, str(listing), str(out), *extra],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = wall
    result["items_per_s_end_to_end"] = result["items"] / wall
    return result


def one(side: str, listing: Path, out: Path, extra: list[str]) -> dict[str, Any]:
    """The work of one side (called in the child process)."""
    paths = [Path(line) for line in listing.read_text().splitlines()[1:] if line]
    if side == "medlabel":
        return _job(listing, out, extra)
    if side == "medlabel-ray":
        return _job(listing, out, extra, engine="ray", workers=2)
    if side == "monai-xray":
        return monai_xray_loop(paths, out)
    return monai_volume_loop(paths, extra[0], out)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--xrays", type=int, default=200, help="chest X-rays in the archive")
    parser.add_argument("--volumes", type=int, default=40, help="hippocampus volumes")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray engine run")
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        side, listing, out, *extra = args.one
        print(json.dumps(one(side, Path(listing), Path(out), extra)))
        return
    from medlabel.models import bundled_models

    data = require_data(
        "cxr-pneumonia-224/train/NORMAL",
        "cxr-pneumonia-224/train/PNEUMONIA",
        "ct-abdomen/dicom-series",
        "ct-abdomen/example_ct_sm.nii.gz",
        *(["msd-hippocampus/imagesTr"] if "mri-hippocampus" in bundled_models() else []),
    )

    work = Path(tempfile.mkdtemp(prefix="bench-annotate-"))
    import torch

    from medlabel.devices import native_bf16

    rows: dict[str, Any] = {
        "machine": machine(),
        "native_bf16": native_bf16(torch.device("cpu")),
        "archives": {},
        "command": invocation(),
    }
    kermany = data / "cxr-pneumonia-224" / "train"
    half = args.xrays // 2
    xrays = sorted((kermany / "NORMAL").glob("*.jpeg"))[:half]
    xrays += sorted((kermany / "PNEUMONIA").glob("*.jpeg"))[: args.xrays - len(xrays)]
    listing = _listing(xrays, work / "xray")
    models = ["cxr-pneumonia", "cxr-lungs"]
    entry: dict[str, Any] = {"models": models}
    entry["medlabel"] = _child("medlabel", listing, work / "xray-out", models)
    if not args.no_ray:
        entry["medlabel_ray_2_actors"] = _child("medlabel-ray", listing, work / "xray-ray", models)
    entry["monai_loop"] = _child("monai-xray", listing, work / "xray-monai", [])
    rows["archives"]["chest X-rays (224 px JPEG)"] = entry

    if "mri-hippocampus" in bundled_models():
        vols = sorted((data / "msd-hippocampus" / "imagesTr").glob("*.nii.gz"))[: args.volumes]
        listing = _listing(vols, work / "hippo")
        entry = {"models": ["mri-hippocampus"]}
        entry["medlabel"] = _child("medlabel", listing, work / "hippo-out", ["mri-hippocampus"])
        entry["monai_loop"] = _child(
            "monai-volume", listing, work / "hippo-monai", ["mri-hippocampus"]
        )
        rows["archives"]["hippocampus MRI volumes"] = entry

    ct = [data / "ct-abdomen" / "dicom-series", data / "ct-abdomen" / "example_ct_sm.nii.gz"]
    listing = _listing(ct, work / "ct")
    rows["archives"]["CT (series + NIfTI), recipes"] = {
        "models": ["ct-lungs", "ct-bone"],
        "medlabel": _child("medlabel", listing, work / "ct-out", ["ct-lungs", "ct-bone"]),
    }
    write(rows, args.tag)


def write(rows: dict[str, Any], tag: str = "") -> None:
    m = rows["machine"]
    lines = [
        f"# Annotation job throughput, {m['date']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; native bfloat16: "
        f"{'yes' if rows.get('native_bf16') else 'no'}. Each archive given as a CSV list; NIfTI "
        "masks written. The MONAI loop does the same work per item with MONAI transforms and "
        "the same networks in PyTorch (every ensemble member; weights rebuilt from the ONNX "
        "exports for a bundle shipped without torch files; see `benchmarks/bench_annotate.py`).",
        "",
        "| archive | items | medlabel items/s (end to end) | Ray, 2 actors | MONAI loop items/s "
        "(end to end) | medlabel / MONAI (end to end) |",
        "|---|---|---|---|---|---|",
    ]

    def rate(r: dict[str, Any] | None) -> str:
        if not r:
            return "-"
        return f"{r['items_per_s']:.1f} ({r['items_per_s_end_to_end']:.1f})"

    for name, e in rows["archives"].items():
        ours, loop = e["medlabel"], e.get("monai_loop")
        ratio = "-"
        if loop:
            steady = ours["items_per_s"] / loop["items_per_s"]
            whole = ours["items_per_s_end_to_end"] / loop["items_per_s_end_to_end"]
            ratio = f"{steady:.2f}x ({whole:.2f}x)"
        lines.append(
            f"| {name} | {ours['items']} | {rate(ours)} | "
            f"{rate(e.get('medlabel_ray_2_actors'))} | {rate(loop)} | {ratio} |"
        )
    lines += ["", "Where medlabel's time goes (seconds, summed over items):", ""]
    for name, e in rows["archives"].items():
        parts = ", ".join(f"{k} {v:.1f}" for k, v in e["medlabel"]["timing"].items())
        lines.append(f"* {name}: wall {e['medlabel']['seconds']:.1f}; {parts}")
    lines += [
        "",
        "Items/s: the job's own time (medlabel: the whole `annotate` call, including model "
        "loading, thumbnails, manifest and report; MONAI loop: its loop after loading the "
        "networks); in brackets, end to end: a fresh Python process per run, start-up and "
        "imports included. Reading runs in background threads and overlaps with inference. The "
        "Ray run includes starting a local Ray and loading the models in each actor.",
        "",
        "Command: `"
        + rows.get(
            "command", "python benchmarks/bench_annotate.py" + (f" --tag {tag}" if tag else "")
        )
        + "`.",
    ]
    save_results("annotate" + (f"-{tag}" if tag else ""), rows, lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
