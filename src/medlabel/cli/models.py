"""Commands around trained models: predict, features, evaluate, models, demo.

Example:
    >>> from typer.testing import CliRunner
    >>> from medlabel.cli import app
    >>> CliRunner().invoke(app, ["evaluate", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from medlabel.cli.app import (
    PrecisionOpt,
    _errors,
    _precision,
    app,
)
from medlabel.errors import MedlabelError


@app.command()
@_errors
def predict(
    source: Annotated[Path, typer.Argument(help="Image file, folder of images, or dataset.")],
    model: Annotated[Path, typer.Option("--model", help="Model bundle folder.")],
    out: Annotated[Path, typer.Option("--out", help="Predictions CSV.")] = Path("predictions.csv"),
    split: Annotated[str | None, typer.Option("--split", help="Dataset split to predict.")] = None,
    tta: Annotated[
        bool, typer.Option("--tta", help="Test-time augmentation (flips, if allowed).")
    ] = False,
    engine: Annotated[str, typer.Option("--engine", help="onnx (fast) or torch.")] = "onnx",
) -> None:
    """Predict labels with calibrated confidences for a file, a folder or a dataset split.

    Exits with code 1 when no image could be predicted (the CSV still says why).
    """
    from medlabel.classify.bundle import load_bundle
    from medlabel.classify.predict import predict_source, write_predictions

    if out.is_dir():
        raise MedlabelError(out, "--out is a folder; give a .csv file path")
    bundle = load_bundle(model, engine=engine)
    rows = predict_source(bundle, source, split=split, tta=tta)
    write_predictions(rows, out)
    failed = sum(1 for r in rows if r.get("error"))
    typer.echo(f"wrote {out} ({len(rows)} row(s), {failed} failed)")
    if rows and failed == len(rows):
        if len(rows) == 1:
            raise MedlabelError(rows[0]["id"], rows[0]["error"])
        raise MedlabelError(
            source, f"none of the {len(rows)} images could be predicted; {out} says why"
        )


@app.command()
@_errors
def features(
    image: Annotated[Path | None, typer.Argument(help="Image file (or use --pairs).")] = None,
    mask: Annotated[
        Path | None, typer.Option("--mask", help="Label map on the image grid.")
    ] = None,
    label: Annotated[int | None, typer.Option("--label", help="Label to measure.")] = None,
    params: Annotated[
        Path | None, typer.Option("--params", help="PyRadiomics-style YAML/JSON settings.")
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option("--pairs", help="CSV image,mask or a folder with imagesTr/labelsTr."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="CNN bundle: deep features instead.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="features.csv or features.json")] = Path(
        "features.csv"
    ),
) -> None:
    """IBSI radiomics (PyRadiomics names) of labelled regions, or deep features with --model.

    A batch (--pairs) goes on past failing cases; the command exits with code 1 when no
    region could be measured (the output still says why).
    """
    from medlabel.features import extract_many, write_features
    from medlabel.io import read_image, read_label

    if model is not None:
        from tqdm import tqdm

        from medlabel.classify.bundle import load_bundle
        from medlabel.io.formats import detect_format

        bundle = load_bundle(model, engine="torch")
        sources = [p for _, p, _ in _pairs_or_single(image, None, pairs)] if pairs else [image]
        if image is not None and image.is_dir() and not pairs:
            # a folder of image files (not one DICOM series): every image below it
            files = sorted(
                f
                for f in image.rglob("*")
                if f.is_file() and detect_format(f) not in (None, "dicom", "medmnist")
            )
            sources = list(files) or sources
        rows: list[dict[str, Any]] = []
        for src in tqdm(sources, desc="deep features", disable=len(sources) < 2):
            if src is None:
                raise typer.BadParameter("give an IMAGE or --pairs", param_hint="IMAGE")
            try:
                vector = bundle.embed(bundle.prepare(read_image(src))[None])[0]
            except MedlabelError as err:
                if len(sources) == 1:
                    raise
                rows.append({"id": str(src), "error": err.reason})
                continue
            rows.append({"id": str(src), **{f"deep_{k}": float(v) for k, v in enumerate(vector)}})
        write_features(rows, out)
        failed = sum(1 for r in rows if r.get("error"))
        width = max(len(r) - 1 for r in rows)
        typer.echo(f"wrote {out} ({len(rows)} row(s), {width} deep features, {failed} failed)")
        if failed == len(rows):
            raise MedlabelError(image, "no image could be measured (see the error column)")
        return
    triples = _pairs_or_single(image, mask, pairs)
    unsized: list[str] = []  # images whose files give no pixel size

    def read(path: Path) -> Any:
        img = read_image(path)
        if not img.spacing_known:
            unsized.append(path.name)
        return img

    items = [
        (
            item,
            (lambda p=img_path: read(p)),
            (lambda p=mask_path: read_label(p)),
        )
        for item, img_path, mask_path in triples
    ]
    rows = extract_many(items, label=label, params=params, progress=True)
    write_features(rows, out)
    failed = sum(1 for r in rows if r.get("error"))
    typer.echo(f"wrote {out} ({len(rows)} row(s), {failed} failed)")
    if unsized:
        typer.echo(
            f"note: {len(unsized)} image(s) give no pixel size (e.g. {unsized[0]}): 1 mm per "
            "pixel was assumed, so shape features (and any resampledPixelSpacing) are in pixels",
            err=True,
        )
    if rows and failed == len(rows):
        if pairs is not None:
            raise MedlabelError(
                pairs, f"no features extracted: all {len(rows)} row(s) failed; {out} says why"
            )
        _, img_path, mask_path = triples[0]
        reason = str(rows[0]["error"])
        named = reason.startswith((f"{img_path}: ", f"{mask_path}: "))  # a file that failed
        raise MedlabelError(None if named else img_path, reason)


def _pairs_or_single(
    image: Path | None, mask: Path | None, pairs: Path | None
) -> list[tuple[str, Path, Path]]:
    from medlabel.features.pairs import find_pairs

    if pairs is not None:
        return find_pairs(pairs)
    if image is None or mask is None:
        raise typer.BadParameter("give IMAGE with --mask, or --pairs", param_hint="--mask")
    return [(image.name, image, mask)]


@app.command()
@_errors
def evaluate(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="Bundle folder, bundled model or segmentation recipe; repeat to compare "
            "versions on the same data.",
        ),
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Dataset (.npz, CSV, class folders, MSD, images+masks).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("evaluation"),
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Split to evaluate: train, val, test or all (classification default: test).",
        ),
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time augmentation.")] = False,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Segmentation masks: value to class, e.g. 150=lung_right."),
    ] = None,
    precision: PrecisionOpt = "auto",
) -> None:
    """Evaluate a model (or compare several): metrics.json and report.html per model.

    ``--out`` must be new, empty or an earlier evaluation's folder (it holds metrics.json or
    comparison.md); an annotation job folder or other files are refused.
    """
    rows = []
    _precision(precision)
    _check_report_folder(out)
    if len({_is_segmenter(name) for name in model}) > 1:
        raise MedlabelError(
            None, "compare models of one task: these mix classifiers and segmenters"
        )
    for k, name in enumerate(model):
        target = out if len(model) == 1 else out / f"{k + 1}-{Path(name).name}"
        rows.append((name, _evaluate_one(name, data, target, split, tta, labels, precision)))
    if len(model) > 1:
        lines = [
            "| model | n | trained on | " + " | ".join(rows[0][1][1]) + " |",
            "|---|---|---|" + "---|" * len(rows[0][1][1]),
        ]
        for name, (n, figures, seen) in rows:
            lines.append(
                f"| {name} | {n} | {seen} | "
                + " | ".join(f"{v:.4f}" for v in figures.values())
                + " |"
            )
        flattered = [name for name, (_, _, seen) in rows if seen]
        if flattered:
            lines += [
                "",
                f"Warning: {', '.join(flattered)} trained on some of these images or cases "
                "('trained on'): their figures flatter them against the others.",
            ]
        table = "\n".join(lines)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(table + "\n")
        typer.echo(table)


def _check_report_folder(out: Path) -> None:
    """Refuse an ``--out`` whose files an evaluation would overwrite: a file, an annotation
    job folder, or a non-empty folder that is not an earlier evaluation's output.

    Example:
        >>> import tempfile
        >>> job = Path(tempfile.mkdtemp())
        >>> _ = (job / "manifest.jsonl").write_text("{}")
        >>> try:
        ...     _check_report_folder(job)
        ... except MedlabelError as err:
        ...     print(err.reason.split(";")[0])
        holds an annotation job (manifest.jsonl), whose report.html would be overwritten
    """
    hint = "give a new or empty folder, or an earlier evaluation's output"
    if out.exists() and not out.is_dir():
        raise MedlabelError(out, f"--out is a file, not a report folder; {hint}")
    if not out.is_dir():
        return
    if (out / "manifest.jsonl").exists():
        raise MedlabelError(
            out,
            f"holds an annotation job (manifest.jsonl), whose report.html would be "
            f"overwritten; {hint}",
        )
    earlier = (out / "metrics.json").is_file() or (out / "comparison.md").is_file()
    if not earlier and any(out.iterdir()):
        raise MedlabelError(
            out, f"holds other files, not an earlier evaluation (no metrics.json); {hint}"
        )


def _evaluate_one(
    model: str,
    data: Path,
    out: Path,
    split: str | None,
    tta: bool,
    labels: str | None,
    precision: str = "auto",
) -> tuple[int, dict[str, float], int]:
    """Evaluate one model; returns n, its headline figures and how many of the evaluated
    images or cases trained it."""
    from medlabel.segment.api import open_segmenter

    if _is_segmenter(model):
        from medlabel.segment.dataset import open_segmentation_dataset
        from medlabel.segment.evaluation import evaluate_segmenter

        result = evaluate_segmenter(
            open_segmenter(model, precision=precision),
            open_segmentation_dataset(data, labels),
            out,
            split=split,
            tta=tta,
        )
        dice = ", ".join(f"{c} {v['dice']['mean']:.4f}" for c, v in result["summary"].items())
        typer.echo(
            f"{model}: {result['cases_evaluated']} (n={result['n']}): Dice {dice}; "
            f"report: {out / 'report.html'}"
        )
        _warn_trained_on(result.get("trained_on"), model, "cases")
        coarse = (result.get("low_resolution") or {}).get("count")
        if coarse:
            typer.echo(
                f"warning: {coarse} of these cases are coarser than every image {model} "
                "trained on, so it saw them interpolated",
                err=True,
            )
        return (
            int(result["n"]),
            {f"Dice {c}": float(v["dice"]["mean"]) for c, v in result["summary"].items()},
            int(result.get("trained_on") or 0),
        )
    from medlabel.classify.bundle import load_bundle
    from medlabel.classify.evaluation import evaluate_bundle
    from medlabel.data.sources import open_dataset

    split = split or "test"
    metrics = evaluate_bundle(
        load_bundle(model), open_dataset(data), split=split, out_dir=out, tta=tta
    )
    auc = metrics.get("auc")
    auc_text = "n/a" if auc is None else f"{auc:.4f}"
    typer.echo(
        f"{model}: {split}: accuracy {metrics['accuracy']:.4f}, AUC {auc_text} "
        f"(n={metrics['n']}); report: {out / 'report.html'}"
    )
    _warn_trained_on(metrics.get("trained_on"), model, "images")
    ood = metrics.get("out_of_distribution") or {}
    if ood.get("excess"):
        _warn_subset(
            f"{ood['flagged']} of the {metrics['n']} images lie outside {model}'s training "
            "distribution (its out-of-distribution check)",
            ood.get("inside"),
        )
    small = metrics.get("low_resolution") or {}
    if small.get("count"):
        _warn_subset(
            f"{small['count']} of the {metrics['n']} images are smaller than every image "
            f"{model} trained on and were enlarged for it",
            small.get("others"),
        )
    figures = {"accuracy": float(metrics["accuracy"])}
    if auc is not None:
        figures["AUC"] = float(auc)
    return int(metrics["n"]), figures, int(metrics.get("trained_on") or 0)


def _warn_subset(what: str, others: dict[str, Any] | None) -> None:
    """Say on stderr what part of the evaluated images is unlike the model's training data,
    with the accuracy on the other images where there are any."""
    tail = f"; on the other {others['n']}: accuracy {others['accuracy']:.4f}" if others else ""
    typer.echo(f"warning: {what}{tail}", err=True)


def _warn_trained_on(count: int | None, model: str, what: str) -> None:
    """Say on stderr that some evaluated images or cases trained the model."""
    if count:
        typer.echo(
            f"warning: {count} of these {what} trained {model}: the figures flatter it",
            err=True,
        )


def _is_segmenter(model: str) -> bool:
    """A recipe name or a bundle whose description says segmentation."""
    from medlabel.models import resolve_model
    from medlabel.segment.recipes import RECIPES

    if model in RECIPES:
        return True
    meta = resolve_model(model) / "bundle.json"
    try:
        return bool(json.loads(meta.read_text()).get("kind") == "segmentation")
    except (OSError, ValueError):
        return False


@app.command()
@_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List bundled models, user models ($MEDLABEL_MODELS) and segmentation recipes."""
    from medlabel.models import list_models, user_model_dir

    rows = list_models(recipes=True)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "origin", "task", "modality", "labels", "input", "validation", "licence")
    for r in rows:
        auc = r.get("validation_auc")
        dice = r.get("validation_dice")
        score = f"AUC {auc:.3f}" if auc is not None else f"Dice {dice:.3f}" if dice else ""
        table.add_row(
            r["name"],
            r["origin"],
            str(r.get("task") or r.get("error", "")),
            str(r.get("modality") or "any"),
            ", ".join(r.get("labels", [])),
            "x".join(str(v) for v in (r.get("input") or {}).get("size", [])),
            score,
            (r.get("licence") or "")[:40],
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    typer.echo(f"user model folder: {user_model_dir()}")


@app.command()
@_errors
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-output"),
) -> None:
    """Run the demo on real sample studies (pydicom-data wheel, ../shared/data if present)."""
    from medlabel.demo import run_demo, run_demo_annotation

    index = run_demo(out)
    summary = run_demo_annotation(out)
    typer.echo(
        f"annotated {summary.items} studies: {summary.done} done, {summary.failed} failed, "
        f"{summary.skipped} with no applicable model ({summary.seconds:.0f} s)"
    )
    typer.echo(f"preprocessing gallery: {index.resolve()}")
    typer.echo(f"annotation report: {summary.report.resolve()}")
