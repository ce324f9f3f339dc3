"""Retraining after review, round by round: fine-tune the last version or train anew?

The review loop grows a labelled set; after each round a new version is trained on every label
so far (a cumulative export of the reviews, with no validation split of its own), in the same
CPU budget, three ways:

* ``anew``: from scratch;
* ``fine-tune``: from the previous version (``--init-from``: its weights and recipe, a tenth of
  the peak rate), validating only on samples that version never trained on (what medlabel
  does);
* ``fine-tune, leaky``: the same, from a copy of the previous bundle with its ``train_ids``
  removed, so the validation split is carved as if the data were new: part of it is what the
  starting model trained on (what medlabel did before it recorded ``train_ids``).

Reviewers are simulated by the true labels; samples arrive in a random order (which samples a
reviewer sees first is what ``bench_active_learning.py`` studies). Two tasks:

* classification, PneumoniaMNIST: the rounds draw from the official training split; the
  official test split scores every version (AUC, accuracy at the validation threshold, ECE);
* segmentation, JSRT: the 40 held-out test cases of ``bench_jsrt.py`` score every version
  (mean Dice per class); the rounds draw from the other 158.

Run: ``python benchmarks/bench_review_rounds.py [--seeds 3] [--minutes 1 1.5]
[--rounds 400 1200 2400] [--seg-rounds 30 80 158] [--task classify segment]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results

ARMS = ("anew", "fine-tune", "fine-tune, leaky")

#: Per task: the table's title and its columns (key, header, digits).
SECTIONS: dict[str, tuple[str, list[tuple[str, str, int]]]] = {
    "classify": (
        "PneumoniaMNIST ({minutes} CPU min per version; official test split, n = 624)",
        [
            ("val_auc", "validation AUC", 4),
            ("test_auc", "test AUC", 4),
            ("test_acc", "test ACC (val threshold)", 4),
            ("test_ece", "test ECE", 4),
            ("val_seen", "val seen", 0),
            ("epochs", "epochs", 0),
        ],
    ),
    "segment": (
        "JSRT ({minutes} CPU min per version; 40 held-out test cases)",
        [
            ("val_dice", "validation Dice", 4),
            ("test_dice", "test Dice (mean)", 4),
            ("test_heart", "test heart", 4),
            ("val_seen", "val seen", 0),
            ("epochs", "epochs", 0),
        ],
    ),
}


def _forget_training_cases(bundle: Path, out: Path) -> Path:
    """A copy of ``bundle`` whose description no longer lists the cases it trained on."""
    shutil.copytree(bundle, out)
    meta = json.loads((out / "bundle.json").read_text())
    meta["data"].pop("train_ids", None)
    (out / "bundle.json").write_text(json.dumps(meta))
    return out


def _trained(bundle: Path) -> set[str]:
    from medlabel.models.files import trained_ids

    return trained_ids(json.loads((bundle / "bundle.json").read_text()))


def _rounds(
    task: str,
    seed: int,
    sizes: list[int],
    work: Path,
    data_for: Callable[[int], Any],
    train_and_score: Callable[[Any, Path | None, Path], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One seed's rounds: ``data_for(n)`` is the data with ``n`` labels; ``train_and_score(ds,
    start, out)`` trains (fine-tuning from ``start`` unless ``None``), saves the bundle to ``out``
    and returns its figures, ``val_ids`` included."""
    rows = []
    previous: dict[str, Path] = {}
    for r, n in enumerate(sizes):
        ds = data_for(n)
        scored: dict[str, Path] = {}
        for arm in ARMS if r else ("anew",):
            start = None
            if arm != "anew":
                start = previous[arm]
                if arm == "fine-tune, leaky":
                    start = _forget_training_cases(start, work / f"{task}-r{r}-s{seed}-forgot")
            out = work / f"{task}-r{r}-s{seed}-{arm.replace(', ', '-')}"
            figures = train_and_score(ds, start, out)
            val_ids = set(figures.pop("val_ids"))
            seen = set() if arm == "anew" else _trained(previous[arm])
            row = {"task": task, "seed": seed, "round": r + 1, "labels": n, "arm": arm}
            row |= {"val_n": len(val_ids), "val_seen": len(seen & val_ids), **figures}
            rows.append(row)
            print(json.dumps(row), flush=True)
            scored[arm] = out
        previous = {a: scored.get(a, scored["anew"]) for a in ARMS}  # round 1: one start
    return rows


def _classify_rounds(data: Path, seed: int, sizes: list[int], minutes: float, work: Path) -> Any:
    from medlabel.classify.bundle import load_bundle, save_bundle
    from medlabel.classify.recipe import auto_config
    from medlabel.classify.train import train_classifier
    from medlabel.data.arrays import load_arrays
    from medlabel.data.sources import open_dataset
    from medlabel.evaluate import classification_metrics

    full = open_dataset(data / "medmnist" / "pneumoniamnist.npz")
    pool = np.random.default_rng(seed).permutation(full.indices("train"))
    test = full.indices("test")

    def train_and_score(ds: Any, start: Path | None, out: Path) -> dict[str, Any]:
        cfg = auto_config(ds, budget_minutes=minutes, seed=seed)
        cfg = replace(cfg, init_from=str(start)) if start is not None else cfg
        t0 = time.perf_counter()
        trained = train_classifier(ds, cfg, progress=False)
        seconds = time.perf_counter() - t0
        bundle = load_bundle(save_bundle(trained, out))
        arrays = load_arrays(full, test, bundle.spec, progress=False)
        m = classification_metrics(
            arrays.labels,
            bundle.predict_arrays(arrays.images),
            bundle.class_names,
            threshold=bundle.threshold,
            n_bootstrap=0,
        )
        return {
            "seconds": seconds,
            "epochs": len(trained.history),
            "val_auc": trained.val_metrics["auc"],
            "val_ids": trained.data["val_ids"],
            "test_auc": m["auc"],
            "test_acc": m["accuracy"],
            "test_ece": m["ece"],
        }

    # no validation split given: each run carves its own, as from a review export
    return _rounds(
        "classify",
        seed,
        sizes,
        work,
        lambda n: full.subset(np.concatenate([pool[:n], test])),
        train_and_score,
    )


def _segment_rounds(data: Path, seed: int, sizes: list[int], minutes: float, work: Path) -> Any:
    from bench_jsrt import LABELS
    from medlabel.segment.api import Segmenter
    from medlabel.segment.bundle import load_segmentation_bundle, save_segmentation_bundle
    from medlabel.segment.dataset import open_segmentation_dataset
    from medlabel.segment.evaluation import evaluate_segmenter
    from medlabel.segment.train import SegTrainConfig, train_segmenter
    from seg_common import hold_out

    full = hold_out(open_segmentation_dataset(data / "jsrt-lungs-224", LABELS), 40)
    train = [c for c in full.cases if c.split == "train"]
    test = [c for c in full.cases if c.split == "test"]
    order = np.random.default_rng(seed).permutation(len(train))

    def train_and_score(ds: Any, start: Path | None, out: Path) -> dict[str, Any]:
        cfg = SegTrainConfig(budget_minutes=minutes, seed=seed)
        cfg = replace(cfg, init_from=str(start)) if start is not None else cfg
        t0 = time.perf_counter()
        trained = train_segmenter(ds, cfg, progress=False)
        seconds = time.perf_counter() - t0
        bundle = load_segmentation_bundle(save_segmentation_bundle(trained, out, name="jsrt"))
        summary = evaluate_segmenter(
            Segmenter("jsrt", bundle=bundle),
            ds,
            Path(tempfile.mkdtemp(prefix="rounds-eval-")),
            split="test",
            progress=False,
        )["summary"]
        return {
            "seconds": seconds,
            "epochs": len(trained.history),
            "val_dice": trained.val_metrics["mean_dice"],
            "val_ids": trained.data["val_ids"],
            **{f"test_{c}": summary[c]["dice"]["mean"] for c in summary},
            "test_dice": float(np.mean([summary[c]["dice"]["mean"] for c in summary])),
        }

    return _rounds(
        "segment",
        seed,
        sizes,
        work,
        lambda n: replace(full, cases=[train[i] for i in order[:n]] + test),
        train_and_score,
    )


def _table(rows: list[dict[str, Any]], task: str, cols: list[tuple[str, str, int]]) -> list[str]:
    mine = [r for r in rows if r["task"] == task]
    if not mine:
        return []
    head = ["round (labels)", "arm", *[c[1] for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rnd in sorted({r["round"] for r in mine}):
        for arm in ARMS:
            got = [r for r in mine if r["round"] == rnd and r["arm"] == arm]
            if not got:
                continue
            cells = []
            for key, _, digits in cols:
                v = np.array([g[key] for g in got], dtype=float)
                cells.append(
                    f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"
                    if len(v) > 1
                    else f"{v.mean():.{digits}f}"
                )
            lines.append(f"| {rnd} ({got[0]['labels']}) | {arm} | " + " | ".join(cells) + " |")
    return lines


def write(rows: dict[str, Any]) -> None:
    info = rows["machine"]
    runs = rows["runs"]
    seeds = len({r["seed"] for r in runs})
    lines = [
        f"# Retraining after review, round by round, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores. Mean ± sd over {seeds} seed(s); each "
        "version trained on every label so far within the same budget; 'val seen' counts "
        "validation samples the starting model had trained on.",
        "",
    ]
    for k, (task, (title, cols)) in enumerate(SECTIONS.items()):
        if any(r["task"] == task for r in runs):
            lines += [f"## {title.format(minutes=rows['minutes'][k])}", ""]
            lines += [*_table(runs, task, cols), ""]
    lines += [f"Command: `{rows['command']}`."]
    save_results("review-rounds", rows, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, nargs=2, default=[1.0, 1.5])
    parser.add_argument("--rounds", type=int, nargs="+", default=[400, 1200, 2400])
    parser.add_argument("--seg-rounds", type=int, nargs="+", default=[30, 80, 158])
    parser.add_argument("--task", nargs="+", default=["classify", "segment"])
    parser.add_argument("--render", type=Path, default=None, help="re-render a results JSON")
    args = parser.parse_args()
    if args.render is not None:
        write(json.loads(args.render.read_text()))
        return
    data = require_data(
        *(["medmnist/pneumoniamnist.npz"] if "classify" in args.task else []),
        *(["jsrt-lungs-224/images", "jsrt-lungs-224/masks"] if "segment" in args.task else []),
    )
    work = Path(tempfile.mkdtemp(prefix="review-rounds-"))
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        if "classify" in args.task:
            runs += _classify_rounds(data, seed, args.rounds, args.minutes[0], work)
        if "segment" in args.task:
            runs += _segment_rounds(data, seed, args.seg_rounds, args.minutes[1], work)
    write(
        {
            "machine": machine(),
            "minutes": args.minutes,
            "runs": runs,
            "command": invocation(),
        }
    )


if __name__ == "__main__":
    main()
