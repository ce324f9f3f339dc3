"""The review loop simulated on PneumoniaMNIST: how many labels each strategy needs.

Start from a small stratified random seed of labelled training images; each round, the
strategy picks ``--batch`` more images from the unlabelled rest of the training split (with
``medlabel.review.active.rank``, the code ``medlabel next`` uses), a "reviewer" supplies their
true labels, the model is retrained from scratch, and its AUC on the official test split is
recorded. The test split is never used for choosing. The full-data reference is the same
learner trained on every training label.

Learner: medlabel's classic image features (intensity, texture, HOG; ``medlabel.classify.
classic``) with a standardised logistic regression, so that dozens of rounds over several
seeds fit in a few CPU minutes. The curves compare the strategies; the learner is not the
project's best classifier.

Run: ``python benchmarks/bench_active_learning.py [--seeds 3] [--batch 40] [--budget 1000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, invocation, machine, require_data, save_results

STRATEGIES = ("uncertainty", "margin", "diversity", "random")


def _learner(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(x, y)


def _auc(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))


def simulate(
    feats: np.ndarray,
    labels: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    strategy: str,
    *,
    seed: int,
    start: int,
    batch: int,
    budget: int,
) -> list[tuple[int, float]]:
    """(labels used, test AUC) after each round."""
    from medlabel.review.active import rank

    rng = np.random.default_rng(seed)
    labelled: list[int] = []
    for c in (0, 1):  # a stratified seed
        pool = np.flatnonzero(labels == c)
        share = round(start * float(np.mean(labels == c)))
        labelled += rng.choice(pool, max(1, share), replace=False).tolist()
    curve = []
    unit = (feats - feats.mean(0)) / (feats.std(0) + 1e-9)
    while True:
        model = _learner(feats[labelled], labels[labelled])
        curve.append((len(labelled), _auc(model, test_x, test_y)))
        if len(labelled) >= budget:
            return curve
        rest = np.setdiff1d(np.arange(len(labels)), labelled)
        p = model.predict_proba(feats[rest])[:, 1]
        eps = 1e-12
        entropy = -(p * np.log2(p + eps) + (1 - p) * np.log2(1 - p + eps))
        rows = [
            {"item": int(i), "uncertainty": float(h), "margin": float(abs(2 * q - 1))}
            for i, h, q in zip(rest, entropy, p, strict=True)
        ]
        picked = rank(
            rows,
            strategy,
            batch,
            seed=seed * 1000 + len(labelled),
            features=lambda r: unit[r["item"]],
        )
        labelled += [r["item"] for r in picked]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--start", type=int, default=40)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--budget", type=int, default=1000)
    args = parser.parse_args()
    data = require_data("medmnist/pneumoniamnist.npz")
    from medlabel.classify.classic import image_features

    npz = np.load(data / "medmnist" / "pneumoniamnist.npz")
    t0 = time.perf_counter()
    train_x = image_features(npz["train_images"][:, None].astype(np.uint8))
    train_y = npz["train_labels"].ravel().astype(int)
    test_x = image_features(npz["test_images"][:, None].astype(np.uint8))
    test_y = npz["test_labels"].ravel().astype(int)
    feature_s = time.perf_counter() - t0
    full = _auc(_learner(train_x, train_y), test_x, test_y)
    curves: dict[str, list[list[tuple[int, float]]]] = {s: [] for s in STRATEGIES}
    for strategy in STRATEGIES:
        for seed in range(args.seeds):
            curves[strategy].append(
                simulate(
                    train_x,
                    train_y,
                    test_x,
                    test_y,
                    strategy,
                    seed=seed,
                    start=args.start,
                    batch=args.batch,
                    budget=args.budget,
                )
            )
            print(strategy, seed, curves[strategy][-1][-1], flush=True)
    write(curves, full, len(train_y), feature_s, args)


def _mean_curve(runs: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(r) for r in runs)
    x = np.array([p[0] for p in runs[0][:n]])
    auc = np.array([[p[1] for p in r[:n]] for r in runs])
    return x, auc.mean(0), auc.std(0)


def write(curves: dict[str, Any], full: float, n_train: int, feature_s: float, args: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    info = machine()
    stamp = info["date"][:10]
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = full - 0.005
    table = {}
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for strategy, runs in curves.items():
        x, mean, std = _mean_curve(runs)
        reach = next((int(n) for n, a in zip(x, mean, strict=True) if a >= target), None)
        table[strategy] = {
            "labels_to_full_auc": reach,
            "auc_at": {int(n): float(a) for n, a in zip(x, mean, strict=True)},
            "auc_sd_at": {int(n): float(s) for n, s in zip(x, std, strict=True)},
        }
        ax.plot(x, mean, label=strategy)
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    ax.axhline(
        full, color="k", linestyle="--", linewidth=1, label=f"all {n_train} labels ({full:.3f})"
    )
    ax.set_xlabel("labels used")
    ax.set_ylabel("test AUC (official split)")
    ax.set_title("PneumoniaMNIST: simulated review loop")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png = RESULTS / f"active-learning-{stamp}.png"
    fig.savefig(png, dpi=110)
    rows = {
        "machine": info,
        "full_data_auc": full,
        "n_train": n_train,
        "seeds": args.seeds,
        "start": args.start,
        "batch": args.batch,
        "feature_seconds": feature_s,
        "strategies": table,
    }
    checkpoints = [n for n in (80, 200, 400, 600, 1000) if n in table["random"]["auc_at"]]
    lines = [
        f"# Active learning on PneumoniaMNIST, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores. Learner: classic image features + "
        f"logistic regression, retrained each round; seed {args.start} labels, +{args.batch} "
        f"per round; mean of {args.seeds} seeds; AUC on the official test split (never used "
        "for choosing). Curve: `active-learning-" + stamp + ".png`.",
        "",
        f"Full-data reference ({n_train} labels): test AUC {full:.4f}. 'Labels to reach' = "
        f"first round whose mean AUC is within 0.005 of it.",
        "",
        "| strategy | labels to reach full-data AUC | "
        + " | ".join(f"AUC @ {n}" for n in checkpoints)
        + " |",
        "|---|---|" + "---|" * len(checkpoints),
    ]
    for strategy, t in table.items():
        reach = t["labels_to_full_auc"]
        lines.append(
            f"| {strategy} | {reach if reach is not None else '> ' + str(args.budget)} | "
            + " | ".join(f"{t['auc_at'][n]:.4f}" for n in checkpoints)
            + " |"
        )
    lines += ["", f"Command: `{invocation()}`."]
    save_results("active-learning", rows, lines)


if __name__ == "__main__":
    main()
