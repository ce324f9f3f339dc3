"""Shared steps of the segmentation benchmarks: hold out a test set, train, test, write tables."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common import machine, plural, save_results, thread_prefix, threads_clause
from medlabel.evaluate.segmentation import distance_key
from medlabel.segment.api import Segmenter
from medlabel.segment.augment import SegAugment
from medlabel.segment.bundle import load_segmentation_bundle, save_segmentation_bundle
from medlabel.segment.evaluation import evaluate_segmenter
from medlabel.segment.train import SegTrainConfig, train_ensemble, train_segmenter

_TRAIN, _AUG = SegTrainConfig(), SegAugment()  # the library's defaults


def add_training_args(parser: argparse.ArgumentParser, budget: float) -> None:
    """The options every segmentation benchmark takes (defaults: the library's)."""
    parser.add_argument("--budget-minutes", type=float, default=budget)
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=_TRAIN.max_epochs,
        help="cap on epochs (the schedule's end)",
    )
    parser.add_argument("--network", default=_TRAIN.network)
    parser.add_argument("--folds", type=int, default=1, help="N > 1: N-fold ensemble")
    parser.add_argument("--width", type=int, default=_TRAIN.width, help="first-level channels")
    parser.add_argument("--elastic", type=float, default=_AUG.elastic, help="elastic std (voxels)")
    parser.add_argument("--fp32", action="store_true", help="no bfloat16 autocast")
    parser.add_argument("--optimizer", default=_TRAIN.optimizer, help="adamw or sgd (nnU-Net's)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=_TRAIN.weight_decay)
    parser.add_argument("--mirror", default=_TRAIN.mirror, help="flipped axes: auto, all or none")
    parser.add_argument(
        "--rotate", type=float, default=_AUG.rotate_deg, help="max rotation (degrees)"
    )
    parser.add_argument("--scale", type=float, default=_AUG.scale, help="max relative zoom")
    parser.add_argument(
        "--shift", type=float, default=_AUG.shift, help="max translation (share of the patch)"
    )
    parser.add_argument(
        "--full-res", action="store_true", help="a first network level at full resolution"
    )
    parser.add_argument(
        "--train-fraction", type=float, default=1.0, help="share of the training cases used"
    )
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument("--save", type=Path, default=None, help="also keep the bundle here")


def training_config(args: argparse.Namespace, **extra: Any) -> SegTrainConfig:
    """The training settings those options describe."""
    return SegTrainConfig(
        budget_minutes=args.budget_minutes,
        max_epochs=args.max_epochs,
        network=args.network,
        width=args.width,
        bf16=False if args.fp32 else None,
        augment=SegAugment(
            elastic=args.elastic, rotate_deg=args.rotate, scale=args.scale, shift=args.shift
        ),
        mirror=args.mirror,
        full_res=args.full_res,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        **extra,
    )


def command_line(script: str, args: argparse.Namespace) -> str:
    """The command that reproduces a run (recorded in the bundle and the table).

    A thread limit set in the environment is part of it: a budgeted run trains less with
    fewer threads.
    """
    return (
        thread_prefix(os.environ.get("OMP_NUM_THREADS"))
        + f"python benchmarks/{script} --budget-minutes {args.budget_minutes:g}"
        + (f" --max-epochs {args.max_epochs}" if args.max_epochs != _TRAIN.max_epochs else "")
        + (f" --network {args.network}" if args.network != _TRAIN.network else "")
        + (f" --folds {args.folds}" if args.folds > 1 else "")
        + (f" --width {args.width}" if args.width != _TRAIN.width else "")
        + (f" --elastic {args.elastic:g}" if args.elastic != _AUG.elastic else "")
        + (" --fp32" if args.fp32 else "")
        + (f" --optimizer {args.optimizer}" if args.optimizer != _TRAIN.optimizer else "")
        + (f" --lr {args.lr:g}" if args.lr is not None else "")
        + (
            f" --weight-decay {args.weight_decay:g}"
            if args.weight_decay != _TRAIN.weight_decay
            else ""
        )
        + (f" --mirror {args.mirror}" if args.mirror != _TRAIN.mirror else "")
        + (f" --rotate {args.rotate:g}" if args.rotate != _AUG.rotate_deg else "")
        + (f" --scale {args.scale:g}" if args.scale != _AUG.scale else "")
        + (f" --shift {args.shift:g}" if args.shift != _AUG.shift else "")
        + (" --full-res" if args.full_res else "")
        + (f" --train-fraction {args.train_fraction:g}" if args.train_fraction < 1 else "")
        + (f" --tag {args.tag}" if args.tag else "")
        + (f" --save {args.save}" if args.save else "")
        + (" --no-tta" if getattr(args, "no_tta", False) else "")
    )


def results_stem(base: str, args: argparse.Namespace) -> str:
    """File name stem of the results: ``base[-Nfold][-tag]``."""
    return (
        base
        + (f"-{args.folds}fold" if args.folds > 1 else "")
        + (f"-{args.tag}" if args.tag else "")
    )


def hold_out(ds: Any, n_test: int, seed: int = 0, train_fraction: float = 1.0) -> Any:
    """Mark ``n_test`` cases (deterministic) as ``test``; the rest stay ``train``.

    ``train_fraction < 1`` keeps only that share of the training cases (for learning curves;
    the test cases stay the same).
    """
    order = np.random.default_rng(seed).permutation(len(ds.cases))
    test = {int(i) for i in order[:n_test]}
    rest = order[n_test:]
    keep = test | {int(i) for i in rest[: round(train_fraction * len(rest))]}
    cases = [
        replace(c, split="test" if i in test else "train")
        for i, c in enumerate(ds.cases)
        if i in keep
    ]
    return replace(ds, cases=cases)


def train_and_test(
    ds: Any,
    cfg: SegTrainConfig,
    *,
    name: str,
    licence: str,
    intended_use: str,
    command: str,
    save: Path | None,
    tta: bool = False,
    folds: int = 1,
    modalities: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Train on train (with its own validation, or ``folds``-fold cross-validation members),
    save the bundle, test on the held-out split."""
    start = time.perf_counter()
    members = train_ensemble(ds, cfg, folds=folds) if folds > 1 else [train_segmenter(ds, cfg)]
    trained = members[0]
    train_s = time.perf_counter() - start
    work = save or Path(tempfile.mkdtemp(prefix=f"{name}-")) / name
    save_segmentation_bundle(
        members,
        work,
        name=name,
        licence=licence,
        command=command,
        intended_use=intended_use,
        modalities=modalities,
    )
    bundle = load_segmentation_bundle(work)
    report_dir = Path(tempfile.mkdtemp(prefix=f"{name}-eval-"))
    result = evaluate_segmenter(
        Segmenter(bundle.name, bundle=bundle), ds, report_dir, split="test", tta=tta
    )
    if save is not None:
        record_test(save, result["summary"], result["n"], tta)
    return {
        "machine": machine(),
        "budget_minutes": cfg.budget_minutes,
        "train_seconds": train_s,
        "plan": trained.plan.to_dict(),
        "epochs": len(trained.history),
        "members": len(members),
        "validation": trained.val_metrics,
        "test": result["summary"],
        "test_n": result["n"],
        "seconds_per_case": result["seconds_per_case"],
        "bundle": str(work),
        "report": str(report_dir / "report.html"),
        "command": command,
        "tta": tta,
    }


def record_test(bundle: Path, summary: dict[str, Any], n: int, tta: bool) -> None:
    """Add the held-out test figures to a saved bundle's description and card."""
    from medlabel.models.files import write_description
    from medlabel.segment.card import segmentation_card

    meta = json.loads((bundle / "bundle.json").read_text())
    meta.setdefault("metrics", {})["test"] = {"classes": summary, "n": n, "tta": tta}
    shared_source(meta)
    write_description(bundle, meta, segmentation_card)


def shared_source(meta: dict[str, Any]) -> None:
    """Name a bundle's training data by its place in the shared data set
    (``shared/data/msd-hippocampus``) rather than by this machine's absolute path, which
    would travel with a shipped bundle and mean nothing elsewhere."""
    data = meta.get("data") or {}
    parts = Path(str(data.get("path", ""))).parts
    if Path(str(data.get("path", ""))).is_absolute() and "shared" in parts:
        start = len(parts) - 1 - parts[::-1].index("shared")
        data["path"] = "/".join(parts[start:])


def record_train_ids(bundle: Path, ds: Any) -> None:
    """Write the ids of the cases a single-model bundle trained on into its description, for
    bundles made before medlabel recorded them: its training cases are the held-out data
    set's ``train`` cases less its recorded validation cases, written only when their count
    equals the recorded one. Evaluation then leaves them out by default and warns when they
    are evaluated."""
    from medlabel.models.files import write_description
    from medlabel.segment.card import segmentation_card

    meta = json.loads((bundle / "bundle.json").read_text())
    data = meta["data"]
    pool = {ds.cases[i].id for i in ds.indices("train")}
    val = set(data["val_ids"])
    assert len(meta.get("members") or [1]) == 1, "ensembles record their pooled cases"
    assert val <= pool, f"validation cases outside the training pool: {sorted(val - pool)[:5]}"
    train = sorted(pool - val)
    assert len(train) == data["n_train"], (len(train), data["n_train"])
    data["train_ids"] = train
    shared_source(meta)
    write_description(bundle, meta, segmentation_card)
    print(f"{bundle}: recorded {len(train)} training case ids")


def write_table(rows: dict[str, Any], stem: str, title: str, notes: list[str]) -> Path:
    """``results/<stem>-<date>.json`` and ``.md`` with per-class test and validation Dice."""
    t, v = rows["test"], rows["validation"]["classes"]
    plan, info = rows["plan"], rows["machine"]
    hd_key, unit = distance_key(next(iter(t.values())))
    lines = [
        f"# {title}, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores"
        + threads_clause(info)
        + ". Self-configured "
        f"{plan['dims']}D {plan['network']['name']} (patch {plan['patch_size']}, batch "
        f"{plan['batch_size']}), {rows['train_seconds'] / 60:.1f} min in all "
        f"({plural(rows['epochs'], 'epoch')}). Held-out test: {rows['test_n']} cases never "
        "used for training or selection; metrics on each case's original grid"
        + (" with mirroring test-time augmentation." if rows.get("tta") else "."),
        "",
        f"| class | test Dice mean [95% CI] | test Dice worst | test HD95 ({unit}) | "
        "validation Dice |",
        "|---|---|---|---|---|",
    ]
    for c in t:
        ci = t[c].get("dice_ci", [float("nan")] * 2)
        lines.append(
            f"| {c} | {t[c]['dice']['mean']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | "
            f"{t[c]['dice']['min']:.4f} | {t[c][hd_key]['mean']:.2f} | "
            f"{v[c]['dice']['mean']:.4f} |"
        )
    lines += [
        "",
        *notes,
        "",
        f"Inference: {rows['seconds_per_case'] * 1000:.0f} ms per case (ONNX Runtime, "
        "preprocessing and mapping back included).",
        "",
        f"Command: `{rows['command']}`.",
    ]
    return save_results(stem, rows, lines)
