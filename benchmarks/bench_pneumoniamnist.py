"""PneumoniaMNIST (official test split): medlabel's recipes against the published numbers.

* default recipe: ``medlabel train classify --data pneumoniamnist.npz`` (``--model auto``,
  10-minute CPU budget), three seeds: mean and spread of test AUC and ACC;
* best recipe: the three seeds as one ensemble (logits averaged, temperature and threshold
  fitted on the validation split);
* the classic family: hand-crafted features + gradient boosting;
* throughput of batch inference with ONNX Runtime, plain PyTorch and a MONAI-transforms loop
  on the same model.

ACC is reported two ways: with the decision threshold medlabel chose on the validation split
(what ``medlabel predict`` does), and by the MedMNIST v2 protocol (score > 0.5), which is how
the published numbers were computed. Nothing here looks at the test split before testing.

Run: ``python benchmarks/bench_pneumoniamnist.py [--budget-minutes 10] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    description,
    invocation,
    machine,
    require_data,
    save_results,
    thread_prefix,
    threads_clause,
)
from medlabel.classify.bundle import load_bundle, save_bundle, save_classic_bundle
from medlabel.classify.classic import train_classic
from medlabel.classify.ensemble import calibrate_ensemble
from medlabel.classify.recipe import auto_config
from medlabel.classify.train import TrainConfig, train_classifier
from medlabel.data.arrays import load_arrays
from medlabel.data.sources import open_dataset
from medlabel.evaluate import classification_metrics

PUBLISHED = [
    ("ResNet-18 (28), MedMNIST v2 paper", 0.944, 0.854),
    ("ResNet-50 (224), MedMNIST v2 paper", 0.962, 0.884),
    ("auto-sklearn, MedMNIST v2 paper", 0.942, 0.855),
    ("AutoKeras, MedMNIST v2 paper", 0.947, 0.878),
    ("Google AutoML Vision, MedMNIST v2 paper", 0.991, 0.946),
    ("plain MONAI 3-layer CNN, 10 min on this CPU (measured for the issue)", 0.969, 0.902),
    ("plain MONAI ResNet-18, 10 min on this CPU (measured for the issue)", 0.964, 0.848),
]


def test_scores(bundle_path: Path, ds: Any) -> dict[str, Any]:
    bundle = load_bundle(bundle_path)
    arrays = load_arrays(ds, ds.indices("test"), bundle.spec, progress=False)
    probs = bundle.predict_arrays(arrays.images)
    m = classification_metrics(
        arrays.labels, probs, bundle.class_names, threshold=bundle.threshold, n_bootstrap=1000
    )
    return {**headline(m), "threshold": bundle.threshold}


def headline(m: dict[str, Any]) -> dict[str, Any]:
    """The figures the tables show, from ``classification_metrics``' output."""
    return {
        "auc": m["auc"],
        "acc": m["accuracy"],
        "acc_medmnist": m["medmnist"]["acc"],
        "auc_ci": m["ci"]["auc"],
        "acc_ci": m["ci"]["accuracy"],
        "n": m["n"],
    }


def throughput(bundle_path: Path, images: np.ndarray) -> dict[str, float]:
    """Images per second: ONNX Runtime vs torch vs a per-image MONAI transform loop, each
    running every member of an ensemble bundle (as its predictions need)."""
    import torch
    from monai.transforms import Compose, EnsureChannelFirst, NormalizeIntensity, ScaleIntensity

    onnx_bundle = load_bundle(bundle_path, engine="onnx")
    torch_bundle = load_bundle(bundle_path, engine="torch")
    out: dict[str, float] = {}
    for name, bundle in (("onnxruntime", onnx_bundle), ("pytorch", torch_bundle)):
        bundle.predict_arrays(images[:64])
        start = time.perf_counter()
        bundle.predict_arrays(images)
        out[name] = len(images) / (time.perf_counter() - start)
    nets = [torch_bundle.torch_member(i) for i in range(len(torch_bundle.meta["members"]))]
    monai = Compose(
        [EnsureChannelFirst(channel_dim="no_channel"), ScaleIntensity(), NormalizeIntensity()]
    )
    start = time.perf_counter()
    with torch.no_grad():
        for img in images:
            x = torch.as_tensor(np.asarray(monai(img[0].astype(np.float32)) * 255.0))[None]
            torch.stack([net(x) for net in nets]).mean(0)
    out["monai_loop"] = len(images) / (time.perf_counter() - start)
    return out


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def apply_settings(cfg: TrainConfig, settings: list[str]) -> None:
    """Set ``KEY=VALUE`` pairs on ``cfg``; ``augment.KEY`` and ``model_kwargs.KEY`` reach into
    those parts, and each value is read as JSON where it parses (else kept as a string).

    Example:
        >>> cfg = TrainConfig()
        >>> apply_settings(cfg, ["normalize=image", "augment.contrast=0.3"])
        >>> cfg.normalize, cfg.augment.contrast
        ('image', 0.3)
    """
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        head, _, tail = key.partition(".")
        if head == "model_kwargs" and tail:
            cfg.model_kwargs[tail] = value
        elif head == "augment" and tail in _field_names(cfg.augment):
            setattr(cfg.augment, tail, value)
        elif not tail and head in _field_names(cfg):
            setattr(cfg, head, value)
        else:
            raise ValueError(f"--set {item!r}: TrainConfig has no {key!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ema", type=float, default=0.0, help="weight averaging decay (0: off)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast in training")
    parser.add_argument(
        "--size", type=int, default=None, help="network input side in px (default: the recipe's)"
    )
    parser.add_argument("--tag", default="", help="suffix of the results file name")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training setting, e.g. normalize=image, augment.contrast=0.3",
    )
    parser.add_argument(
        "--no-extras", action="store_true", help="skip the classic model and the throughput run"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--render", type=Path, default=None, help="re-render a results JSON")
    args = parser.parse_args()
    if args.render is not None:
        write(json.loads(args.render.read_text()), TrainConfig)
        return
    data = require_data("medmnist/pneumoniamnist.npz")
    ds = open_dataset(data / "medmnist" / "pneumoniamnist.npz")
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-pneumonia-"))
    rows: dict[str, Any] = {
        "default": [],
        "machine": machine(),
        "budget_minutes": args.budget_minutes,
        "ema": args.ema,
        "bf16": args.bf16,
        "size": args.size,
        "tag": args.tag,
        "settings": args.settings,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "command": invocation(),
    }
    members = []
    for seed in range(args.seeds):
        cfg = auto_config(
            ds,
            budget_minutes=args.budget_minutes,
            size=args.size,
            seed=seed,
            overrides={"ema": args.ema, "bf16": args.bf16},
        )
        apply_settings(cfg, args.settings)
        start = time.perf_counter()
        trained = train_classifier(ds, cfg, progress=False)
        seconds = time.perf_counter() - start
        path = save_bundle(trained, work / f"default-seed{seed}")
        scores = test_scores(path, ds)
        scores.update(
            seconds=seconds, epochs=len(trained.history), val_auc=trained.val_metrics["auc"]
        )
        rows["default"].append(scores)
        members.append(trained)
        print(f"seed {seed}: {json.dumps(scores)}", flush=True)
    temperature, threshold = calibrate_ensemble(members)
    ens_path = save_bundle(members, work / "ensemble", temperature=temperature, threshold=threshold)
    rows["ensemble"] = test_scores(ens_path, ds)
    print(f"ensemble: {json.dumps(rows['ensemble'])}", flush=True)
    if not args.no_extras:
        extras(rows, ds, work, members[0].spec)
    write(rows, TrainConfig)


def extras(rows: dict[str, Any], ds: Any, work: Path, spec: Any) -> None:
    """The classic family's scores and batch-inference throughput, into ``rows``."""
    start = time.perf_counter()
    classic = train_classic(ds, estimator="gradient-boosting", size=(28, 28), progress=False)
    classic_path = save_classic_bundle(classic, work / "classic")
    rows["classic"] = {**test_scores(classic_path, ds), "seconds": time.perf_counter() - start}
    print(f"classic: {json.dumps(rows['classic'])}", flush=True)
    test = load_arrays(ds, ds.indices("test"), spec, progress=False).images
    rows["throughput_img_per_s"] = throughput(work / "default-seed0", np.tile(test, (4, 1, 1, 1)))
    print(f"throughput: {rows['throughput_img_per_s']}", flush=True)


def _mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"


def write(rows: dict[str, Any], _cfg: Any) -> None:
    stem = (
        "pneumoniamnist"
        + ("-ema" if rows.get("ema") else "")
        + ("-bf16" if rows.get("bf16") else "")
        + (f"-{rows['size']}px" if rows.get("size") else "")
        + (f"-{rows['tag']}" if rows.get("tag") else "")
    )
    d = rows["default"]
    ema = f", weights averaged with decay {rows['ema']:g}" if rows.get("ema") else ""
    ema += ", bfloat16 autocast" if rows.get("bf16") else ""
    ema += f", {rows['size']} px" if rows.get("size") else ""
    net = next(
        (s.split("=", 1)[1] for s in rows.get("settings", []) if s.startswith("model=")),
        "compact CNN",
    )
    lines = [
        f"# PneumoniaMNIST benchmark, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores"
        + threads_clause(rows["machine"])
        + ". Official test "
        f"split (n={d[0]['n']}). CPU budget per model: {rows['budget_minutes']} min.",
        "",
        "| model | test AUC | test ACC (threshold from val) | test ACC (MedMNIST >0.5) | "
        "train time |",
        "|---|---|---|---|---|",
        f"| medlabel {'default' if not ema else 'auto recipe'} ({net}, auto{ema}), "
        f"{len(d)} seed{'s' if len(d) > 1 else ''} | "
        f"{_mean_sd([r['auc'] for r in d])} | {_mean_sd([r['acc'] for r in d])} | "
        f"{_mean_sd([r['acc_medmnist'] for r in d])} | "
        f"{np.mean([r['seconds'] for r in d]) / 60:.1f} min |",
        f"| medlabel best: {len(d)}-seed ensemble{ema} | {rows['ensemble']['auc']:.3f} | "
        f"{rows['ensemble']['acc']:.3f} | {rows['ensemble']['acc_medmnist']:.3f} | "
        f"{sum(r['seconds'] for r in d) / 60:.1f} min |",
    ]
    if "classic" in rows:
        c = rows["classic"]
        lines.append(
            f"| medlabel classic (features + gradient boosting) | {c['auc']:.3f} | "
            f"{c['acc']:.3f} | {c['acc_medmnist']:.3f} | {c['seconds'] / 60:.1f} min |"
        )
    for name, auc, acc in PUBLISHED:
        lines.append(f"| {name} | {auc:.3f} | | {acc:.3f} | |")
    tp = rows.get("throughput_img_per_s")
    if tp:
        lines += [
            "",
            "Batch inference on the test images (x4), same model: "
            + ", ".join(f"{k} {v:.0f} img/s" for k, v in tp.items())
            + f" (ONNX Runtime / PyTorch = {tp['onnxruntime'] / tp['pytorch']:.2f}x, "
            f"/ MONAI loop = {tp['onnxruntime'] / tp['monai_loop']:.2f}x).",
        ]
    settings = rows.get("settings") or []
    if settings:
        lines += ["", "Settings changed from the auto recipe: " + ", ".join(settings) + "."]
    # results from before the command was recorded (--render): the settings they name
    command = rows.setdefault(
        "command",
        thread_prefix(rows.get("threads"))
        + "python benchmarks/bench_pneumoniamnist.py --budget-minutes "
        f"{rows['budget_minutes']:g} --seeds {len(d)}"
        + (f" --ema {rows['ema']:g}" if rows.get("ema") else "")
        + (" --bf16" if rows.get("bf16") else "")
        + (f" --size {rows['size']}" if rows.get("size") else "")
        + (f" --tag {rows['tag']}" if rows.get("tag") else "")
        + "".join(f" --set {item}" for item in settings)
        + (" --no-extras" if "classic" not in rows else ""),
    )
    lines += ["", f"95% bootstrap CIs are in the JSON file. Command: `{command}`."]
    save_results(stem, rows, lines)


if __name__ == "__main__":
    main()
