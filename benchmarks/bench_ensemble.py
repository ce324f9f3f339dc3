"""Ensemble of classification bundles trained in separate runs, scored on a test split.

Each bundle's members are averaged first (its own ensemble), then the bundles' raw logits are
averaged with equal weight. One temperature and, for a binary task, one decision threshold
are fitted on the validation split; the test split is scored once with them. Every bundle
must take the same input (size, channels) and name the same classes.

Run: ``python benchmarks/bench_ensemble.py --data DATA --tag NAME BUNDLE [BUNDLE ...]``, for
example on the bundles that ``bench_pneumoniamnist.py --out DIR`` leaves in ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pneumoniamnist import headline
from common import description, invocation, machine, save_results
from medlabel.classify.bundle import load_bundle
from medlabel.classify.ensemble import mean_logits
from medlabel.classify.logits import probabilities
from medlabel.classify.train import calibrate_logits
from medlabel.data.arrays import load_arrays
from medlabel.data.sources import open_dataset
from medlabel.evaluate import classification_metrics


def split_logits(
    bundles: list[Any], ds: Any, split: str, tta: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Bundle-mean raw logits and the labels of one split (``tta``: each bundle also sees the
    mirrored images, where it was trained with flips)."""
    spec = bundles[0].spec
    arrays = load_arrays(ds, ds.indices(split), spec, progress=False)
    return mean_logits([b.logits(arrays.images, tta=tta) for b in bundles]), arrays.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tag", required=True, help="results file: ensemble-<tag>-<date>")
    parser.add_argument("--criterion", default="youden", help="threshold criterion")
    parser.add_argument(
        "--tta", action="store_true", help="average over left-right flips (bundles trained so)"
    )
    args = parser.parse_args()
    bundles = [load_bundle(p) for p in args.bundles]
    first = bundles[0]
    for path, b in zip(args.bundles, bundles, strict=True):
        if b.spec != first.spec or b.class_names != first.class_names:
            parser.error(f"{path}: input or classes differ from {args.bundles[0]}")
    ds = open_dataset(args.data)
    if args.tta and not any(b.meta.get("tta_flips") for b in bundles):
        parser.error("--tta: none of these bundles was trained with flips")
    val_logits, val_labels = split_logits(bundles, ds, "val", args.tta)
    temperature, threshold = calibrate_logits(val_logits, val_labels, first.task, args.criterion)
    test_logits, test_labels = split_logits(bundles, ds, "test", args.tta)
    probs = probabilities(test_logits / temperature, first.task)
    m = classification_metrics(test_labels, probs, first.class_names, threshold=threshold)
    rows: dict[str, Any] = {
        "machine": machine(),
        "data": str(args.data),
        "bundles": [str(p) for p in args.bundles],
        "members": sum(len(b.meta["members"]) for b in bundles),
        "tta": args.tta,
        "temperature": temperature,
        "threshold": threshold,
        "test": headline(m),
        "command": invocation(),
    }
    t = rows["test"]
    lines = [
        f"# Ensemble of separately trained bundles, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores.",
        "",
        f"{len(bundles)} bundles ({rows['members']} networks), logits averaged"
        + (" (each also over left-right flips)" if args.tta else "")
        + "; temperature "
        f"{temperature:.3f} and threshold "
        + ("none" if threshold is None else f"{threshold:.3f}")
        + " fitted on the validation split. Test split (n="
        f"{t['n']}).",
        "",
        "| test AUC [95% CI] | test ACC, threshold from val [95% CI] | test ACC (> 0.5) |",
        "|---|---|---|",
        f"| {t['auc']:.4f} [{t['auc_ci'][0]:.3f}, {t['auc_ci'][1]:.3f}] | {t['acc']:.4f} "
        f"[{t['acc_ci'][0]:.3f}, {t['acc_ci'][1]:.3f}] | {t['acc_medmnist']:.4f} |",
        "",
        "Bundles: " + ", ".join(f"`{p}`" for p in rows["bundles"]),
        "",
        f"Command: `{rows['command']}`.",
    ]
    print(json.dumps(rows["test"]))
    save_results(f"ensemble-{args.tag}", rows, lines)


if __name__ == "__main__":
    main()
