"""How much a coarser scan costs ``mri-hippocampus``, and whether medlabel says so.

Each MSD hippocampus case the bundle never trained on (its recorded ``train_ids`` left out)
is thinned along its longest axis, keeping every 2nd or 3rd slice (slice spacing 2 or 3 mm
instead of 1, as in clinical protocols that are not 3D research scans), with its reference
mask thinned the same way. The bundle segments each version on its own grid. Reported per
version: Dice per class, how many results the resolution note marks
(:mod:`medlabel.segment.resolution`) and how many the plausibility checks flag
(:mod:`medlabel.segment.plausibility`). The thinned volumes exist only in memory.

Run: ``python benchmarks/bench_seg_resolution.py [--model mri-hippocampus] [--steps 1,2,3,5]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.evaluate.segmentation import case_metrics
from medlabel.image import MedicalImage
from medlabel.models.files import trained_ids
from medlabel.segment.api import open_segmenter
from medlabel.segment.dataset import open_segmentation_dataset

CLASSES = {1: "anterior", 2: "posterior"}


def thinned(image: MedicalImage, step: int, axis: int) -> MedicalImage:
    """Every ``step``-th slice along array ``axis``, the spacing widened to match (same
    origin and direction, so the kept slices stay where they were)."""
    if step == 1:
        return image
    picked = np.take(image.array, np.arange(0, image.array.shape[axis], step), axis=axis)
    spacing = list(image.spacing)
    spacing[image.ndim - 1 - axis] *= step  # ITK order is the reverse of array order
    return MedicalImage(
        np.ascontiguousarray(picked),
        spacing=tuple(spacing),
        origin=image.origin,
        direction=image.direction,
        metadata=dict(image.metadata),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", default="mri-hippocampus")
    parser.add_argument("--steps", default="1,2,3,5", help="keep every k-th slice, per version")
    args = parser.parse_args()
    data = require_data("msd-hippocampus/imagesTr", "msd-hippocampus/labelsTr")
    seg = open_segmenter(args.model)
    assert seg.bundle is not None, "needs a segmentation bundle"
    seen = trained_ids(seg.bundle.meta)
    ds = open_segmentation_dataset(data / "msd-hippocampus", "1=anterior,2=posterior")
    unseen = [i for i, c in enumerate(ds.cases) if c.id not in seen]
    steps = [int(s) for s in args.steps.split(",")]
    rows: dict[str, Any] = {"machine": machine(), "model": args.model, "cases": len(unseen)}
    start = time.perf_counter()
    for step in steps:
        dice: dict[str, list[float]] = {n: [] for n in CLASSES.values()}
        noted = flagged = 0
        for i in tqdm(unseen, desc=f"every {step}", leave=False):
            image, truth = ds.load(i)
            assert truth is not None
            axis = int(np.argmax(image.array.shape))
            pred, findings, notes = seg.segment_checked(thinned(image, step, axis))
            metrics = case_metrics(pred, thinned(truth, step, axis), CLASSES)
            for name in CLASSES.values():
                dice[name].append(float(metrics[name]["dice"] or 0.0))
            noted += bool(notes)
            flagged += bool(findings)
        rows[f"step{step}"] = {
            "dice": {n: float(np.mean(v)) for n, v in dice.items()},
            "worst": {n: float(np.min(v)) for n, v in dice.items()},
            "noted": noted,
            "flagged": flagged,
        }
        print(step, rows[f"step{step}"])
    rows["seconds"] = time.perf_counter() - start
    info = rows["machine"]
    lines = [
        f"# {args.model} on coarser scans, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores. The {len(unseen)} MSD hippocampus "
        "cases the bundle never trained on, thinned along their longest axis (reference masks "
        "thinned alike); no test-time augmentation.",
        "",
        "| slices kept | slice spacing | Dice anterior (worst) | Dice posterior (worst) | "
        "noted coarser | flagged implausible |",
        "|---|---|---|---|---|---|",
    ]
    for step in steps:
        r = rows[f"step{step}"]
        lines.append(
            f"| every {step} | {step} mm | {r['dice']['anterior']:.4f} "
            f"({r['worst']['anterior']:.3f}) | {r['dice']['posterior']:.4f} "
            f"({r['worst']['posterior']:.3f}) | {r['noted']} / {len(unseen)} | "
            f"{r['flagged']} / {len(unseen)} |"
        )
    lines += [
        "",
        "Dice is measured on each thinned grid, against the reference thinned alike.",
        "",
        f"Command: `{invocation()}`.",
    ]
    save_results(f"seg-resolution-{Path(args.model).name}", rows, lines)


if __name__ == "__main__":
    main()
