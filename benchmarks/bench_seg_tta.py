"""Would test-time views or a shape rule help a 2D segmentation bundle? Screened on its own
validation cases.

Each view (small shifts, zooms, gamma changes of the input, or a mix of them) is predicted
with the bundle, mapped back onto the image, and averaged with the plain prediction; a
convex-hull rule for one class is tried on the plain prediction. Everything is scored on the
validation cases recorded in the bundle (those that picked its weights), never on the
held-out test cases, so a view that helps here can then be tested once.

Only bundles whose network grid is the image grid (whole-image 2D models such as one trained
by ``bench_jsrt.py`` on JSRT) are accepted: the views are applied to the image itself. Only
single-model bundles are accepted too: an ensemble's recorded validation cases are its
members' pooled out-of-fold cases, each of which trained the other members (the shipped
``cxr-lungs`` is a 5-fold ensemble), so screening on them would be screening on training
cases. Train a single model for the screen, e.g. ``python benchmarks/bench_jsrt.py
--budget-minutes 10 --save /tmp/cxr-lungs-single``.

Run: ``python benchmarks/bench_seg_tta.py --model BUNDLE [--shift 4] [--zoom 0.08]
[--hull heart]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.segment.bundle import load_segmentation_bundle
from medlabel.segment.dataset import open_segmentation_dataset

View = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]
DATA = ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart")


def zoom_about_centre(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` magnified by ``factor`` about its centre, same shape (edges repeated).

    Example:
        >>> float(zoom_about_centre(np.arange(9.0).reshape(3, 3), 1.0)[1, 1])
        4.0
    """
    centre = (np.array(x.shape) - 1) / 2
    matrix = np.eye(x.ndim) / factor
    return ndi.affine_transform(x, matrix, offset=centre - matrix @ centre, order=1, mode="nearest")


def views(shift: float, zoom: float) -> tuple[dict[str, View], dict[str, list[str]]]:
    """Each view by name as (forward on the image, inverse on each probability map), and the
    named sets of views that are averaged with the plain prediction."""

    def moved(d: tuple[float, float]) -> View:
        back = (-d[0], -d[1])
        return (
            lambda x: ndi.shift(x, d, order=1, mode="nearest"),
            lambda p: ndi.shift(p, back, order=1, mode="nearest"),
        )

    def zoomed(f: float) -> View:
        return lambda x: zoom_about_centre(x, f), lambda p: zoom_about_centre(p, 1 / f)

    def gamma(g: float) -> View:  # a plain contrast scaling would be undone by the z-score
        def forward(x: np.ndarray) -> np.ndarray:
            lo, hi = float(x.min()), float(x.max())
            return lo + (hi - lo) * ((x - lo) / max(hi - lo, 1e-6)) ** g

        return forward, lambda p: p

    single = {f"shift {d}": moved(d) for d in ((shift, 0), (-shift, 0), (0, shift), (0, -shift))}
    shifts = list(single)
    zooms = [f"zoom {f:g}" for f in (1 - zoom, 1 + zoom)]
    single |= {name: zoomed(f) for name, f in zip(zooms, (1 - zoom, 1 + zoom), strict=True)}
    single |= {f"gamma {g:g}": gamma(g) for g in (0.8, 1.25)}
    return single, {
        "plain": [],
        f"shift {shift:g} px": shifts,
        f"zoom {1 - zoom:g}-{1 + zoom:g}": zooms,
        "shift + zoom": shifts + zooms,
        "gamma 0.8-1.25": ["gamma 0.8", "gamma 1.25"],
    }


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="a single-model 2D bundle (ensembles such as the shipped cxr-lungs are refused)",
    )
    parser.add_argument("--shift", type=float, default=4.0, help="pixels")
    parser.add_argument("--zoom", type=float, default=0.08, help="relative")
    parser.add_argument("--hull", default="heart", help="class whose convex hull is tried")
    args = parser.parse_args()
    data = require_data(DATA[0])
    bundle = load_segmentation_bundle(args.model)
    if len(bundle.members) > 1:
        parser.error(
            f"{args.model} is an ensemble of {len(bundle.members)} members: an ensemble's "
            "recorded validation cases each trained other members, so screening on them would "
            "score training cases; pass a single-model bundle (e.g. from bench_jsrt.py --save)"
        )
    recorded = bundle.meta.get("data") or {}
    # a case the bundle trained on is never screened on, whatever else its record says
    val_ids = set(recorded.get("val_ids") or []) - set(recorded.get("train_ids") or [])
    ds = open_segmentation_dataset(data / DATA[0], DATA[1])
    cases = [i for i, c in enumerate(ds.cases) if c.id in val_ids]
    if not cases:
        parser.error(f"{args.model}: no validation cases of {DATA[0]} recorded in the bundle")
    classes = dict(ds.classes)
    hull = {n: c for c, n in classes.items()}.get(args.hull)
    single, sets = views(args.shift, args.zoom)
    scores: dict[str, dict[str, list[float]]] = {k: {n: [] for n in classes.values()} for k in sets}
    scores[f"plain, {args.hull} convex hull"] = {n: [] for n in classes.values()}
    for i in cases:
        image, mask = ds.load(i)
        assert mask is not None
        truth = np.asarray(mask.array)
        plain, _ = bundle.probabilities(image)
        if plain.shape[1:] != truth.shape:
            parser.error(f"{args.model}: its network grid is not the image grid")
        x = np.asarray(image.array, np.float32)
        mapped = {}  # each view predicted once, mapped back onto the image
        for view, (forward, inverse) in single.items():
            probs, _ = bundle.probabilities(image.with_array(forward(x)))
            mapped[view] = np.stack([inverse(q) for q in probs])
        for name, members in sets.items():
            labels = np.argmax(plain + sum((mapped[v] for v in members), np.zeros_like(plain)), 0)
            for c, cname in classes.items():
                scores[name][cname].append(_dice(labels == c, truth == c))
        labels = np.argmax(plain, axis=0)
        for c, cname in classes.items():
            pred = labels == c
            if c == hull and pred.any():
                pred = convex_hull_image(pred)
            scores[f"plain, {args.hull} convex hull"][cname].append(_dice(pred, truth == c))
    rows: dict[str, Any] = {
        "machine": machine(),
        "model": str(args.model),
        "n": len(cases),
        "dice": {k: {n: float(np.mean(v)) for n, v in s.items()} for k, s in scores.items()},
        "worst": {k: {n: float(np.min(v)) for n, v in s.items()} for k, s in scores.items()},
        "command": invocation(),
    }
    names = list(classes.values())
    lines = [
        f"# Test-time views and a shape rule, {rows['machine']['date']}",
        "",
        f"Machine: {rows['machine']['cpu']}, {rows['machine']['cores']} cores. Bundle "
        f"`{args.model}`, its {len(cases)} validation cases (not the held-out test cases). "
        "Mean Dice (worst case in brackets); each view set is averaged with the plain "
        "prediction.",
        "",
        "| views | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for k in scores:
        lines.append(
            f"| {k} | "
            + " | ".join(f"{rows['dice'][k][n]:.4f} ({rows['worst'][k][n]:.3f})" for n in names)
            + " |"
        )
    lines += ["", f"Command: `{rows['command']}`."]
    print(json.dumps(rows["dice"]))
    save_results("seg-tta-" + bundle.name, rows, lines)


if __name__ == "__main__":
    main()
