"""Classical recipes against TotalSegmentator's labels on the shared CT examples, and timing.

* ``ct-lungs`` vs TotalSegmentator lung lobes (10, 11 left; 12, 13, 14 right), per side and
  merged, on ``ct-abdomen/example_ct_sm.nii.gz`` (the only example with lungs in view);
* ``ct-bone`` vs the merged bone labels (vertebrae and sacrum 25-50, humeri to hips 69-78,
  skull, ribs and sternum 91-116; costal cartilage 117 reported both ways) on both examples;
* ``cxr-lungs-classical`` vs the manual JSRT lung masks (all 198 cases);
* wall time of every recipe per volume (median of 3 runs).

The TotalSegmentator labels are a model's output, not manual truth: read these Dice values
as agreement with TotalSegmentator.

Run: ``python benchmarks/bench_recipes.py [--repeat 3] [--cxr-cases N]`` (``--repeat 1
--cxr-cases 10`` for a quick check: fewer timed runs, the first N JSRT cases only).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results, timeit
from medlabel.evaluate.segmentation import mask_metrics
from medlabel.image import MedicalImage, same_grid
from medlabel.io import read_image, read_label
from medlabel.preprocess.resample import resample_to_reference
from medlabel.segment import list_recipes, run_recipe

LUNG_RIGHT, LUNG_LEFT = (12, 13, 14), (10, 11)
BONE = tuple(range(25, 51)) + tuple(range(69, 79)) + tuple(range(91, 117))
CARTILAGE = 117


def _truth(ct: MedicalImage, path: Path) -> np.ndarray:
    seg = read_label(path)
    if not same_grid(ct, seg):  # the series' labels are stored LAS: bring them onto the CT grid
        seg = resample_to_reference(seg, ct)
    return seg.array


def _round(m: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v is None else round(float(v), 4)) for k, v in m.items()}


def ct_rows(data: Path, repeat: int = 3) -> list[dict[str, Any]]:
    rows = []
    cases = [
        (
            "example_ct_sm",
            data / "ct-abdomen" / "example_ct_sm.nii.gz",
            data / "ct-abdomen" / "example_seg.nii.gz",
        ),
        (
            "dicom-series",
            data / "ct-abdomen" / "dicom-series",
            data / "ct-abdomen" / "dicom-series-seg.nii.gz",
        ),
    ]
    for case, image_path, seg_path in cases:
        ct = read_image(image_path)
        truth = _truth(ct, seg_path)
        timing = {}
        for name in [r for r in list_recipes() if r.startswith("ct-")]:
            timing[name] = timeit(lambda n=name, im=ct: run_recipe(n, im), repeat=repeat)[
                "median_s"
            ]
        bone = run_recipe("ct-bone", ct).array == 1
        row: dict[str, Any] = {
            "case": case,
            "size": ct.size,
            "spacing": ct.spacing,
            "seconds": timing,
        }
        row["bone"] = _round(mask_metrics(bone, np.isin(truth, BONE), ct.spacing))
        row["bone_with_cartilage"] = _round(
            mask_metrics(bone, np.isin(truth, (*BONE, CARTILAGE)), ct.spacing)
        )
        if np.isin(truth, LUNG_RIGHT + LUNG_LEFT).sum() > 0:
            lungs = run_recipe("ct-lungs", ct).array
            row["lung_right"] = _round(
                mask_metrics(lungs == 1, np.isin(truth, LUNG_RIGHT), ct.spacing)
            )
            row["lung_left"] = _round(
                mask_metrics(lungs == 2, np.isin(truth, LUNG_LEFT), ct.spacing)
            )
            row["lungs"] = _round(
                mask_metrics(lungs > 0, np.isin(truth, LUNG_RIGHT + LUNG_LEFT), ct.spacing)
            )
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cxr_rows(data: Path, limit: int | None = None) -> dict[str, Any]:
    folder = data / "jsrt-lungs-224"
    dice, seconds = [], []
    import time

    for image_path in sorted((folder / "images").glob("*.png"))[:limit]:
        image = read_image(image_path)
        mask = read_label(folder / "masks" / image_path.name).array
        start = time.perf_counter()
        pred = run_recipe("cxr-lungs-classical", image).array
        seconds.append(time.perf_counter() - start)
        # JSRT masks: 150 right lung, 200 left lung (patient sides)
        d = [mask_metrics(pred == k, mask == v)["dice"] for k, v in ((1, 150), (2, 200))]
        dice.append(d)
    arr = np.array(dice, dtype=float)
    return {
        "n": len(dice),
        "dice_right_mean": float(arr[:, 0].mean()),
        "dice_left_mean": float(arr[:, 1].mean()),
        "dice_both_median": float(np.median(arr.mean(axis=1))),
        "dice_both_min": float(arr.mean(axis=1).min()),
        "seconds_per_image": float(np.median(seconds)),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs of each CT recipe per volume"
    )
    parser.add_argument(
        "--cxr-cases", type=int, default=None, help="only the first N JSRT cases (default: all)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.cxr_cases is not None and args.cxr_cases < 1):
        parser.error("--repeat and --cxr-cases must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Score and time the recipes; ``argv`` as on the command line (``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    data = require_data(
        "ct-abdomen/example_ct_sm.nii.gz",
        "ct-abdomen/example_seg.nii.gz",
        "ct-abdomen/dicom-series",
        "ct-abdomen/dicom-series-seg.nii.gz",
        "jsrt-lungs-224/images",
        "jsrt-lungs-224/masks",
    )
    rows = {
        "machine": machine(),
        "repeat": args.repeat,
        "ct": ct_rows(data, args.repeat),
        "cxr": cxr_rows(data, args.cxr_cases),
        "command": invocation(),
    }
    print(json.dumps(rows["cxr"]))
    write(rows)


def _runs(n: int) -> str:
    return f"median of {n} runs" if n > 1 else "one run"


def _fmt(v: Any) -> str:
    return "" if v is None else f"{v:.3f}"


def write(rows: dict[str, Any]) -> None:
    lines = [
        f"# Classical recipes, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores. Reference: "
        "TotalSegmentator's labels (a model's output, not manual truth) for CT; manual SCR masks "
        "for JSRT.",
        "",
        "| case | structure | Dice | HD95 (mm) | ASD (mm) | volume diff (%) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows["ct"]:
        for key in ("lung_right", "lung_left", "lungs", "bone", "bone_with_cartilage"):
            if key in row:
                m = row[key]
                lines.append(
                    f"| {row['case']} | {key} | {_fmt(m['dice'])} | {_fmt(m['hd95_mm'])} | "
                    f"{_fmt(m['asd_mm'])} | {_fmt(m['volume_diff_pct'])} |"
                )
    c = rows["cxr"]
    lines.append(
        f"| JSRT (n={c['n']}) | cxr-lungs-classical right / left | "
        f"{c['dice_right_mean']:.3f} / {c['dice_left_mean']:.3f} | | | |"
    )
    lines += [
        "",
        f"Seconds per volume ({_runs(rows.get('repeat', 3))} after one warm-up run):",
        "",
        "| case | " + " | ".join(rows["ct"][0]["seconds"]) + " |",
        "|---|" + "---|" * len(rows["ct"][0]["seconds"]),
    ]
    for row in rows["ct"]:
        lines.append(
            f"| {row['case']} {row['size']} | "
            + " | ".join(f"{s:.2f}" for s in row["seconds"].values())
            + " |"
        )
    lines += [
        "",
        f"cxr-lungs-classical: {c['seconds_per_image'] * 1000:.0f} ms per 224 px image; "
        f"worst case Dice {c['dice_both_min']:.3f}.",
        "",
        f"Command: `{rows.get('command', 'python benchmarks/bench_recipes.py')}`.",
    ]
    save_results("recipes", rows, lines)


if __name__ == "__main__":
    main()
