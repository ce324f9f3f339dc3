"""How a classifier bundle holds up when radiographs come framed or sized differently.

The bundled ``cxr-pneumonia`` model is scored on the 745 validation radiographs its
description names (patient-grouped, never trained on), first as they are and then each
changed one way: a narrower or shorter field of view (centre crops, stretched back to the
network's square input as every image is), a letterboxed one (black bars), a lower
resolution (downsampled, then read like any other small file), gamma, and a rotation with
black corners. The bundle's own threshold decides throughout. AUC says whether the ranking
survives; accuracy, sensitivity and specificity say whether the stored threshold does.

A last row scores PneumoniaMNIST's test split: the official Kermany test radiographs at
28 px, centre-cropped square. It changes resolution and framing at once, so it measures
those, not the model on the official test split at full size.

Command: ``python benchmarks/bench_robustness.py [--model BUNDLE] [--changes NAME,NAME]
[--limit N]`` (about 13 minutes on 2 cores for all of them; ``--list`` names the changes, and a
run of only some writes ``robustness-<bundle>-partial-<date>``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.classify.bundle import Bundle, load_bundle
from medlabel.data.sources import open_dataset
from medlabel.evaluate import classification_metrics
from medlabel.image import MedicalImage

Change = Callable[[np.ndarray], np.ndarray]


def crop(width: float = 1.0, height: float = 1.0) -> Change:
    """Keep the central ``width`` x ``height`` fraction of the image."""

    def apply(a: np.ndarray) -> np.ndarray:
        h, w = a.shape
        ch, cw = round(h * height), round(w * width)
        top, left = (h - ch) // 2, (w - cw) // 2
        return np.ascontiguousarray(a[top : top + ch, left : left + cw])

    return apply


def letterbox(width: float) -> Change:
    """Black bars left and right, so the radiograph fills ``width`` of the new image."""

    def apply(a: np.ndarray) -> np.ndarray:
        h, w = a.shape
        out = np.zeros((h, round(w / width)), a.dtype)
        left = (out.shape[1] - w) // 2
        out[:, left : left + w] = a
        return out

    return apply


def resolution(pixels: int) -> Change:
    """Downsample to ``pixels`` x ``pixels`` (area averaging, as a thumbnail export would)."""
    return lambda a: np.asarray(Image.fromarray(a).resize((pixels, pixels), Image.BOX))


def gamma(value: float) -> Change:
    """A gamma curve on the 8-bit grey values."""
    return lambda a: np.round(255.0 * (a / 255.0) ** value).astype(np.uint8)


def rotate(degrees: float) -> Change:
    """Rotate about the centre; the corners left empty are black."""
    return lambda a: np.asarray(Image.fromarray(a).rotate(degrees, Image.BILINEAR))


CHANGES: dict[str, Change] = {
    "as stored": lambda a: a,
    "field of view 90 % wide": crop(width=0.9),
    "field of view 80 % wide": crop(width=0.8),
    "field of view 90 % high": crop(height=0.9),
    "field of view 80 % high": crop(height=0.8),
    "letterboxed to 80 % width": letterbox(0.8),
    "96 px": resolution(96),
    "48 px": resolution(48),
    "32 px": resolution(32),
    "gamma 0.7": gamma(0.7),
    "gamma 1.4": gamma(1.4),
    "rotated 7 degrees": rotate(7.0),
}
#: the last row's name (PneumoniaMNIST's test split), selectable like a change
MNIST = "PneumoniaMNIST test"


def _grey(ds: Any, indices: Any) -> list[np.ndarray]:
    """The 8-bit grey pixels of the given samples, as their files hold them."""
    return [np.asarray(ds.image(int(i)).array).squeeze().astype(np.uint8) for i in indices]


def score(bundle: Bundle, images: list[np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """AUC, accuracy, sensitivity and specificity at the bundle's own threshold."""
    x = np.stack([bundle.prepare(MedicalImage(a)) for a in images])
    m = classification_metrics(
        labels,
        bundle.predict_arrays(x),
        bundle.class_names,
        threshold=bundle.threshold,
        n_bootstrap=0,
    )
    positive = m["per_class"][bundle.class_names[1]]
    return {
        "auc": m["auc"],
        "accuracy": m["accuracy"],
        "sensitivity": positive["recall"],
        "specificity": positive["specificity"],
        "n": m["n"],
    }


def _selected(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The rows to run: ``--changes`` (names, any case) or all, then the first ``--limit``."""
    every = [*CHANGES, MNIST]
    names = every
    if args.changes:
        by_key = {n.casefold(): n for n in every}
        asked = [n.strip() for n in args.changes.split(",") if n.strip()]
        unknown = [n for n in asked if n.casefold() not in by_key]
        if unknown:
            parser.error(f"unknown change(s) {unknown}; choose from: " + ", ".join(every))
        names = [n for n in every if n.casefold() in {a.casefold() for a in asked}]
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        names = names[: args.limit]
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--model", default="cxr-pneumonia", help="a binary classifier bundle")
    parser.add_argument(
        "--changes",
        default=None,
        metavar="NAME,NAME",
        help="only these rows, comma-separated (see --list; default: all)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows chosen")
    parser.add_argument("--list", action="store_true", help="name the rows and stop")
    args = parser.parse_args()
    if args.list:
        print("\n".join([*CHANGES, MNIST]))
        return
    names = _selected(parser, args)
    partial = len(names) < len(CHANGES) + 1
    changes = [n for n in names if n in CHANGES]
    data = require_data(
        "cxr-pneumonia-224/train", *(["medmnist/pneumoniamnist.npz"] if MNIST in names else [])
    )
    bundle = load_bundle(args.model)
    val_ids = set(bundle.meta["data"].get("val_ids") or [])
    assert val_ids, f"{args.model} names no validation images (bench_kermany.py --record-split)"
    rows: dict[str, dict[str, float]] = {}
    chosen: list[int] = []
    if changes:
        start = time.perf_counter()
        ds = open_dataset(data / "cxr-pneumonia-224" / "train")
        ds = ds.with_classes(bundle.class_names)
        chosen = [i for i, sample in enumerate(ds.ids) if sample in val_ids]
        labels = np.asarray(ds.labels)[chosen]
        grey = _grey(ds, chosen)
        print(
            f"read {len(chosen)} validation radiographs in {time.perf_counter() - start:.0f} s; "
            f"{len(changes)} of {len(CHANGES)} changes to score",
            flush=True,
        )
        for k, name in enumerate(changes, 1):
            start = time.perf_counter()
            rows[name] = score(bundle, [CHANGES[name](a) for a in grey], labels)
            print(
                f"[{k}/{len(changes)}] {name}: {time.perf_counter() - start:.0f} s",
                {key: round(v, 4) for key, v in rows[name].items()},
                flush=True,
            )
    reference = None
    if MNIST in names:
        start = time.perf_counter()
        mnist = open_dataset(data / "medmnist" / "pneumoniamnist.npz")
        mnist = mnist.with_classes(bundle.class_names)
        test = mnist.indices("test")
        reference = score(
            bundle,
            _grey(mnist, test),
            np.asarray(mnist.labels)[test],
        )
        print(
            f"{MNIST}: {time.perf_counter() - start:.0f} s",
            {key: round(v, 4) for key, v in reference.items()},
            flush=True,
        )
    info = machine()
    command = invocation()
    lines = [
        f"# Robustness of {bundle.name} to framing and resolution, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores. "
        + (
            f"The {len(chosen)} validation radiographs the bundle's description names "
            "(patient-grouped, never trained on), each changed one way before the bundle "
            "reads it. "
            if chosen
            else ""
        )
        + f"The bundle's own threshold ({bundle.threshold:.3f}) decides."
        + (f" Partial run: {len(names)} of the {len(CHANGES) + 1} rows." if partial else ""),
        "",
        "| radiographs | AUC | accuracy | sensitivity | specificity |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['auc']:.4f} | {r['accuracy']:.4f} | {r['sensitivity']:.3f} | "
            f"{r['specificity']:.3f} |"
        )
    if reference is not None:
        lines += [
            f"| PneumoniaMNIST test (official Kermany test, 28 px, centre-cropped; n="
            f"{reference['n']}) | {reference['auc']:.4f} | {reference['accuracy']:.4f} | "
            f"{reference['sensitivity']:.3f} | {reference['specificity']:.3f} |",
            "",
            "The last row changes resolution and framing at once: it says how far those undo "
            "the model, not how it scores on the official test split at full size (published: "
            "accuracy 0.928, AUC 0.968, Kermany et al. 2018).",
        ]
    lines += ["", f"Command: `{command}`."]
    save_results(
        "robustness-" + Path(str(bundle.path)).name + ("-partial" if partial else ""),
        {"machine": info, "changes": rows, "pneumoniamnist_test": reference, "command": command},
        lines,
    )


if __name__ == "__main__":
    main()
