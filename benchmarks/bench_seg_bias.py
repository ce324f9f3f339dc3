"""Would favouring one class help an ensemble segmentation bundle? Chosen out of fold, tested once.

Each member of an ensemble bundle (``cxr-lungs``: five folds) predicts the validation cases of
its own fold, which it never trained on, so together they give an out-of-fold prediction for
every training case (158 on JSRT; each member's weights were picked on those cases, so the
figures flatter a little). One class's probability (``--class heart``) is multiplied by each
factor in turn before the usual decision and post-processing; the factor with the best mean
out-of-fold Dice of that class is chosen, provided no other class loses more than 0.001.
Only then is the whole ensemble, with the chosen factor and without (1.0), scored on the
held-out cases (those no member saw: not in ``data.val_ids``), once.

Run: ``python benchmarks/bench_seg_bias.py [--model src/medlabel/models/cxr-lungs]
[--class heart]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.evaluate.segmentation import case_metrics
from medlabel.segment.bundle import SegmentationBundle, load_segmentation_bundle
from medlabel.segment.dataset import open_segmentation_dataset

DATA = ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart")
FACTORS = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0)


def member(bundle_path: str, k: int) -> SegmentationBundle:
    """Member ``k`` of an ensemble bundle, on its own."""
    one = load_segmentation_bundle(bundle_path)
    one.meta = copy.deepcopy(one.meta)
    one.meta["members"] = [one.meta["members"][k]]
    return one


def scored(
    bundle: SegmentationBundle, cached: list[tuple[Any, ...]], channel: int, factor: float
) -> dict[str, list[float]]:
    """Dice per class over the cached ``(image, truth, probs, grid)`` with one channel scaled."""
    out: dict[str, list[float]] = {n: [] for n in bundle.classes.values()}
    for image, truth, probs, grid in cached:
        p = probs.copy()
        p[channel] *= factor
        labels = bundle._to_labels(image, p, grid)
        metrics = case_metrics(labels, truth, bundle.classes)
        for n in out:
            out[n].append(float(metrics[n]["dice"] or 0.0))
    return out


def table(
    columns: list[str], entries: list[tuple[str, dict[str, float], float]], names: list[str]
) -> list[str]:
    """Markdown rows: a factor, its mean Dice per class in ``names``, and its worst case."""
    lines = ["| factor | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for label, mean, worst in entries:
        lines.append(
            f"| {label} | " + " | ".join(f"{mean[n]:.4f}" for n in names) + f" | {worst:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", default="src/medlabel/models/cxr-lungs")
    parser.add_argument("--class", dest="name", default="heart")
    args = parser.parse_args()
    data = require_data(DATA[0])
    ensemble = load_segmentation_bundle(args.model)
    channel = next(k for k, n in ensemble.classes.items() if n == args.name)
    ds = open_segmentation_dataset(data / DATA[0], DATA[1])
    index = {c.id: i for i, c in enumerate(ds.cases)}
    oof: list[tuple[Any, ...]] = []
    for k, record in enumerate(ensemble.meta["members"]):
        one = member(args.model, k)
        for cid in tqdm(record["val_ids"], desc=f"member {k}", leave=False):
            image, truth = ds.load(index[cid])
            probs, grid = one.probabilities(image)
            oof.append((image, truth, probs, grid))
    scores = {f: scored(ensemble, oof, channel, f) for f in FACTORS}
    means = {f: {n: float(np.mean(v)) for n, v in d.items()} for f, d in scores.items()}
    base = means[1.0]
    allowed = [
        f for f in FACTORS if all(means[f][n] >= base[n] - 0.001 for n in base if n != args.name)
    ]
    chosen = max(allowed, key=lambda f: means[f][args.name])
    seen = set(ensemble.meta["data"]["val_ids"])
    test: list[tuple[Any, ...]] = []
    for cid, i in tqdm(index.items(), desc="test", leave=False):
        if cid not in seen:
            image, truth = ds.load(i)
            test.append((image, truth, *ensemble.probabilities(image)))
    tested = {f: scored(ensemble, test, channel, f) for f in sorted({1.0, chosen})}
    rows: dict[str, Any] = {
        "machine": machine(),
        "model": args.model,
        "class": args.name,
        "out_of_fold": {str(f): means[f] for f in FACTORS},
        "out_of_fold_worst": {str(f): float(np.min(scores[f][args.name])) for f in FACTORS},
        "chosen": chosen,
        "test": {
            str(f): {
                "mean": {n: float(np.mean(v)) for n, v in d.items()},
                "worst": {n: float(np.min(v)) for n, v in d.items()},
                "n": len(test),
            }
            for f, d in tested.items()
        },
        "n_out_of_fold": len(oof),
    }
    names = list(ensemble.classes.values())
    info = rows["machine"]
    lines = [
        f"# Favouring {args.name} in {Path(args.model).name}, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores. Out of fold: each of the "
        f"{len(ensemble.meta['members'])} members on its own validation fold ({len(oof)} cases "
        "in all); the factor multiplies the class's probability before the decision.",
        "",
        *table(
            [f"{n} (out of fold)" for n in names] + [f"worst {args.name}"],
            [
                (f"{f:g}{' (chosen)' if f == chosen else ''}", means[f], min(scores[f][args.name]))
                for f in FACTORS
            ],
            names,
        ),
        "",
        f"Held-out test ({len(test)} cases, the whole ensemble, scored once per factor below):",
        "",
        *table(
            [*names, f"worst {args.name}"],
            [(f, r["mean"], r["worst"][args.name]) for f, r in rows["test"].items()],
            names,
        ),
    ]
    lines += [
        "",
        f"Command: `{invocation()}`.",
    ]
    save_results(f"seg-bias-{Path(args.model).name}-{args.name}", rows, lines)


if __name__ == "__main__":
    main()
