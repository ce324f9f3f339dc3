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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from medlabel.cli.app import (
    IndexOpt,
    IrregularOpt,
    PrecisionOpt,
    RawMono1Opt,
    SeriesOpt,
    SplitOpt,
    TiltOpt,
    _choice,
    _errors,
    _precision,
    _read,
    app,
)
from medlabel.errors import MedlabelError

#: What ``features --model`` embeds: ``(row id, path, loader)`` per image.
_Sources = list[tuple[str, Path, Callable[[], Any]]]


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
    image: Annotated[
        Path | None,
        typer.Argument(help="Image file or DICOM series folder; with --model, also a folder."),
    ] = None,
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
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """IBSI radiomics (PyRadiomics names) of labelled regions, or deep features with --model.

    With --model, a folder gives one row per image file and per DICOM series below it
    (radiographs sharing a series: one row per file), or only the series chosen with
    --series. A batch (--pairs, or a folder) goes on past failing cases, an image without
    its mask included; the command exits with code 1 when no region or image could be
    measured (the output still says why).
    """
    from medlabel.features import extract_many, write_features
    from medlabel.features.pairs import Pair, find_pairs
    from medlabel.features.table import check_features_path
    from medlabel.io import read_label

    check_features_path(out)  # a table that cannot be written fails before any work
    irregular = _choice(irregular, ("error", "warn", "resample"), "--irregular")
    tilt = _choice(tilt, ("error", "resample"), "--tilt")
    if series is not None and (pairs is not None or image is None):
        raise typer.BadParameter(
            "--series picks one series of the IMAGE folder", param_hint="--series"
        )
    if pairs is None and image is not None and not image.exists():
        raise MedlabelError(image, "no such file or folder")

    def read_one(path: Path, which: str | None = None) -> Any:
        return _read(path, which, irregular, tilt, index, split, keep_monochrome1)

    if model is not None:
        sources, ignored = _deep_sources(
            image, pairs, series, read_one, irregular, tilt, keep_monochrome1
        )
        _deep_features(sources, ignored, model, out, pairs or image)
        return
    if pairs is not None:
        found = find_pairs(pairs)  # images without a mask included, with their error
    elif image is None or mask is None:
        raise typer.BadParameter("give IMAGE with --mask, or --pairs", param_hint="--mask")
    else:
        found = [Pair(image.name, image, mask)]
    unsized: list[str] = []  # images whose files give no pixel size

    def read(pair: Pair) -> Any:
        if pair.error:  # no mask: nothing to measure, so the image is not even read
            raise MedlabelError(pair.image, pair.error)
        img = read_one(pair.image, series)
        if not img.spacing_known:
            unsized.append(pair.image.name)
        return img

    items = [
        (pair.id, (lambda p=pair: read(p)), (lambda p=pair: read_label(p.mask))) for pair in found
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
        _, img_path, mask_path, _ = found[0]
        reason = str(rows[0]["error"])
        named = reason.startswith((f"{img_path}: ", f"{mask_path}: "))  # a file that failed
        raise MedlabelError(None if named else img_path, reason)


def _deep_sources(
    image: Path | None,
    pairs: Path | None,
    series: str | None,
    read_one: Callable[[Path, str | None], Any],
    irregular: str,
    tilt: str,
    keep_monochrome1: bool,
) -> tuple[_Sources, int]:
    """What ``features --model`` embeds: ``(row id, path, loader)`` per image, and how many
    non-image files a folder held.

    A file (or a folder with ``--series``) is one image; a folder gives one image per image
    file and per DICOM series below it, as ``medlabel annotate`` finds them (radiographs
    sharing a series stay one image per file); files that cannot be read get a loader that
    raises their reason, so they become error rows.
    """
    from functools import partial

    from medlabel.features.pairs import unique_ids

    if pairs is not None:
        from medlabel.features.pairs import find_pairs

        images = [p.image for p in find_pairs(pairs)]  # deep features need no mask
        ids = unique_ids([str(p) for p in images])  # an image listed twice: two ids
        listed: _Sources = [
            (name, p, partial(read_one, p, None)) for name, p in zip(ids, images, strict=True)
        ]
        return listed, 0
    if image is None:
        raise typer.BadParameter("give an IMAGE or --pairs", param_hint="IMAGE")
    if not image.is_dir() or series is not None:
        one: _Sources = [(str(image), image, partial(read_one, image, series))]
        return one, 0
    from medlabel.annotate.items import Item, discover, read_item

    found = discover(image)
    if not found.items:
        other = f" ({found.ignored} non-image file(s) passed over)" if found.ignored else ""
        raise MedlabelError(image, f"no images found in this folder or below it{other}")

    def load(item: Item) -> Any:
        if item.kind == "dicom-series" or item.error:
            return read_item(
                item,
                irregular=irregular,  # type: ignore[arg-type]
                tilt=tilt,  # type: ignore[arg-type]
                invert_monochrome1=not keep_monochrome1,
            )
        return read_one(Path(item.files[0]), None)

    paths = [image / i.source if i.source != "." else image for i in found.items]
    ids = [str(p) for p in paths]
    shared = {name for name, k in Counter(ids).items() if k > 1}  # several series, one folder
    ids = [
        f"{name}#{item.series_uid}" if name in shared and item.series_uid else name
        for name, item in zip(ids, found.items, strict=True)
    ]
    sources: _Sources = [
        (name, path, partial(load, item))
        for name, path, item in zip(unique_ids(ids), paths, found.items, strict=True)
    ]
    sources.sort(key=lambda source: source[0])  # rows in the order of the folder tree
    return sources, found.ignored


def _deep_features(
    sources: _Sources,
    ignored: int,
    model: Path,
    out: Path,
    given: Path | None,
) -> None:
    """Embed each source with the bundle's network and write one row per source (an error
    row for each that cannot be read or embedded); exit code 1 when none could."""
    from tqdm import tqdm

    from medlabel.classify.bundle import load_bundle
    from medlabel.features import write_features

    bundle = load_bundle(model, engine="torch")
    rows: list[dict[str, Any]] = []
    errors: list[MedlabelError] = []
    for row_id, path, load in tqdm(sources, desc="deep features", disable=len(sources) < 2):
        try:
            vector = bundle.embed(bundle.prepare(load())[None])[0]
        except MedlabelError as err:
            if err.path is None:  # images read from files do not record their path
                err = type(err)(path, err.reason)
            errors.append(err)
            same = err.path is not None and err.path.absolute() == path.absolute()
            rows.append({"id": row_id, "error": err.reason if same else str(err)})
            continue
        rows.append({"id": row_id, **{f"deep_{k}": float(v) for k, v in enumerate(vector)}})
    write_features(rows, out)
    failed = len(errors)
    width = max((len(r) - 1 for r in rows if not r.get("error")), default=0)
    passed = f"; {ignored} non-image file(s) passed over" if ignored else ""
    typer.echo(f"wrote {out} ({len(rows)} row(s), {width} deep features, {failed} failed{passed})")
    if rows and failed == len(rows):
        if len(rows) == 1:
            raise errors[0]
        raise MedlabelError(
            given, f"none of the {len(rows)} images could be measured; {out} says why"
        )


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
