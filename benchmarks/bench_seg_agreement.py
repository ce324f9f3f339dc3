"""Do different segmentation models make the same mistakes? Agreement on held-out cases.

Each model given with ``--model NAME=BUNDLE`` segments the held-out test cases of a benchmark
(the same 40 cases as ``bench_hippocampus.py`` / ``bench_jsrt.py``). The table puts each
model's Dice against the manual masks beside the Dice between models, the correlation of
their per-case Dice, and the Dice of their majority vote. Models that agree with each other
far better than with the masks, and fail on the same cases, are limited by the data (label
style, ambiguous borders), not by their own variance: more members or more training then
buy little.

Run: ``python benchmarks/bench_seg_agreement.py --data hippocampus --model a=BUNDLE
--model b=BUNDLE [...] [--tag TAG]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.segment.api import open_segmenter
from medlabel.segment.dataset import open_segmentation_dataset
from seg_common import hold_out

DATASETS = {  # benchmark -> (folder, value=class mapping, mirroring TTA as in its benchmark)
    "hippocampus": ("msd-hippocampus", "1=anterior,2=posterior", True),
    "jsrt": ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart", False),
}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def agreement(
    preds: dict[str, list[np.ndarray]], truth: list[np.ndarray], classes: dict[int, str]
) -> dict[str, Any]:
    """Per class: model vs masks, model vs model, per-case correlation, majority vote."""
    out: dict[str, Any] = {}
    names = list(preds)
    for c, cname in classes.items():
        per_case = {
            m: [_dice(p == c, t == c) for p, t in zip(preds[m], truth, strict=True)] for m in names
        }
        pairs = {
            f"{a} vs {b}": float(
                np.mean([_dice(p == c, q == c) for p, q in zip(preds[a], preds[b], strict=True)])
            )
            for a, b in itertools.combinations(names, 2)
        }
        votes = [
            np.sum([preds[m][k] == c for m in names], axis=0) * 2 > len(names)
            for k in range(len(truth))
        ]
        corr = np.corrcoef(np.array([per_case[m] for m in names]))
        out[cname] = {
            "vs_masks": {m: float(np.mean(v)) for m, v in per_case.items()},
            "between_models": pairs,
            "per_case_correlation": float(np.mean(corr[np.triu_indices(len(names), 1)])),
            "majority_vote_vs_masks": float(
                np.mean([_dice(v, t == c) for v, t in zip(votes, truth, strict=True)])
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--data", choices=sorted(DATASETS), default="hippocampus")
    parser.add_argument("--model", action="append", required=True, help="NAME=BUNDLE")
    parser.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="train: the cases the models learnt from (how well they fit the masks at all)",
    )
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    args = parser.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    if len(models) < 2:
        parser.error("give at least two --model NAME=BUNDLE")
    folder, labels, tta = DATASETS[args.data]
    data = require_data(folder)
    ds = hold_out(open_segmentation_dataset(data / folder, labels), 40)
    segmenters = {name: open_segmenter(path) for name, path in models.items()}
    preds: dict[str, list[np.ndarray]] = {name: [] for name in models}
    truth = []
    for i in ds.indices(args.split):
        image, mask = ds.load(i)
        assert mask is not None
        truth.append(mask.array)
        for name, seg in segmenters.items():
            preds[name].append(seg.segment(image, tta=tta).array)
    classes = dict(ds.classes)
    result = agreement(preds, truth, classes)
    rows = {"machine": machine(), "data": args.data, "split": args.split, "models": models}
    rows["n"] = len(truth)
    rows["classes"] = result
    stem = (
        f"{args.data}-agreement"
        + ("-train" if args.split == "train" else "")
        + (f"-{args.tag}" if args.tag else "")
    )
    names = list(models)
    cases = (
        f"{len(truth)} held-out test cases (never used for training or selection)."
        if args.split == "test"
        else f"{len(truth)} cases the models were trained or validated on (not a test)."
    )
    lines = [
        f"# Agreement between segmentation models, {args.data}, {rows['machine']['date']}",
        "",
        cases
        + " Dice against the manual masks and between models (mean over cases)"
        + (", left-right mirroring TTA" if tta else "")
        + ". Models: "
        + ", ".join(f"`{n}` ({p})" for n, p in models.items())
        + ".",
        "",
        "| class | "
        + " | ".join(f"{n} vs masks" for n in names)
        + " | majority vote vs masks | between models (min-max) | per-case Dice correlation |",
        "|---" * (len(names) + 4) + "|",
    ]
    for cname, r in result.items():
        between = list(r["between_models"].values())
        lines.append(
            f"| {cname} | "
            + " | ".join(f"{r['vs_masks'][n]:.4f}" for n in names)
            + f" | {r['majority_vote_vs_masks']:.4f} | {min(between):.3f}-{max(between):.3f} | "
            f"{r['per_case_correlation']:.2f} |"
        )
    lines += [
        "",
        f"Command: `{invocation()}`.",
    ]
    save_results(stem, rows, lines)


if __name__ == "__main__":
    main()
