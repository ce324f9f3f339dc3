"""The ``medlabel`` command line: one Typer app, each command a thin shell over the library.

Every error caused by input is printed as one line ``error: PATH: reason`` with exit code 1;
an unexpected failure prints one line too (exit code 2) unless ``--debug`` asks for the
traceback.

Example:
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["--help"])
    >>> result.exit_code
    0
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from medlabel import __version__
from medlabel.errors import MedlabelError

app = typer.Typer(
    name="medlabel",
    help="Annotate and classify medical images (CT, MRI, X-ray): read, preprocess, preview.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
_STATE = {"debug": False}
log = logging.getLogger("medlabel")


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _errors(func: F) -> F:
    """Turn library errors into one readable line and a non-zero exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except typer.BadParameter as err:  # an option value checked inside the command
            _fail(err.format_message(), 1)
        except MedlabelError as err:
            if _STATE["debug"]:
                raise
            _fail(str(err), 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as err:  # the CLI never shows a traceback unless asked
            if _STATE["debug"]:
                raise
            _fail(f"unexpected {type(err).__name__}: {err} (rerun with --debug for details)", 2)
        return None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"medlabel {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """medlabel: automatic annotation of medical images."""
    _STATE["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# --------------------------------------------------------------------------- shared options
SeriesOpt = Annotated[
    str | None, typer.Option("--series", help="DICOM folder with several series: index or UID.")
]
IrregularOpt = Annotated[
    str,
    typer.Option(
        "--irregular",
        help="Missing slices or uneven spacing: error, warn (keep slices) or resample.",
    ),
]
TiltOpt = Annotated[
    str, typer.Option("--tilt", help="Gantry tilt: error or resample (shift slices).")
]
IndexOpt = Annotated[int | None, typer.Option("--index", help="MedMNIST .npz: image index.")]
SplitOpt = Annotated[str, typer.Option("--split", help="MedMNIST .npz: split (train/val/test).")]
RawMono1Opt = Annotated[
    bool,
    typer.Option("--keep-monochrome1", help="Do not invert MONOCHROME1 radiographs."),
]


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


def _read(
    path: Path,
    series: str | None,
    irregular: str,
    tilt: str,
    index: int | None = None,
    split: str = "test",
    keep_monochrome1: bool = False,
    is_label: bool = False,
) -> Any:
    from medlabel.io import read_image

    return read_image(
        path,
        series=series,
        irregular=_choice(irregular, ("error", "warn", "resample"), "--irregular"),  # type: ignore[arg-type]
        tilt=_choice(tilt, ("error", "resample"), "--tilt"),  # type: ignore[arg-type]
        index=index,
        split=split,
        invert_monochrome1=not keep_monochrome1,
        is_label=is_label,
    )


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"expected numbers separated by commas, got {text!r}", param_hint=option
        ) from exc


# ------------------------------------------------------------------------------- commands
@app.command()
@_errors
def info(
    path: Annotated[Path, typer.Argument(help="Image file, DICOM folder or DICOMDIR.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (SimpleITK conventions).")
    ] = False,
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Show modality, size, spacing, origin, direction, type and value range.

    A folder with several DICOM series lists them; choose one with --series.
    A MedMNIST .npz shows its splits and label counts (or one image with --index).
    """
    from medlabel.io import MedMNISTArchive, scan_series
    from medlabel.io.formats import detect_format

    out: dict[str, Any]
    if path.is_file() and detect_format(path) == "medmnist" and index is None:
        out = MedMNISTArchive(path).summary()
        _show(out, as_json)
        return
    listing = None
    if path.is_dir() or path.name.upper() == "DICOMDIR":
        scan = scan_series(path)
        listing = [s.summary() for s in scan.series]
        if len(listing) > 1 and series is None:
            out = {"series": listing, "unreadable": [str(e) for e in scan.errors]}
            _show(out, as_json)
            return
    image = _read(path, series, irregular, tilt, index, split, keep_monochrome1)
    out = image.geometry()
    out["slices"] = image.size[2] if image.ndim == 3 else 1
    if listing is not None:
        out["series_count"] = len(listing)
    warnings = image.metadata.get("warnings")
    if warnings:
        out["warnings"] = warnings
    _show(out, as_json)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if "series" in data:
        table = Table("#", "uid", "modality", "slices", "size", "description")
        table.columns[1].overflow = "fold"
        for s in data["series"]:
            table.add_row(
                str(s["index"]),
                s["uid"],
                s["modality"] or "?",
                str(s["slices"]),
                f"{s['columns']}x{s['rows']}",
                s["description"],
            )
        console.print(table)
        console.print("choose one with --series INDEX|UID")
        return

    def fmt(value: Any) -> str:
        if isinstance(value, list) and value and isinstance(value[0], float):
            return "(" + ", ".join(f"{v:.6g}" for v in value) + ")"
        return str(value)

    for key, value in data.items():
        if isinstance(value, dict):
            console.print(f"[bold]{key}[/]")
            for k, v in value.items():
                console.print(f"  {k}: {fmt(v)}")
        else:
            console.print(f"[bold]{key}[/]: {fmt(value)}")


@app.command()
@_errors
def convert(
    src: Annotated[Path, typer.Argument(help="Any readable input (DICOM folder included).")],
    dst: Annotated[Path, typer.Argument(help="Output; format from the extension.")],
    label: Annotated[
        bool, typer.Option("--label", help="Treat as a label map (integer type kept).")
    ] = False,
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Convert between formats (NIfTI, NRRD, MHA/MHD, PNG, TIFF) keeping exact geometry."""
    from medlabel.io import write_image

    _refuse_overwrite_input(src, dst)
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1, label)
    write_image(image, dst)
    typer.echo(f"wrote {dst} ({'x'.join(map(str, image.size))}, {image.dtype})")


def _refuse_overwrite_input(src: Path, dst: Path) -> None:
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise MedlabelError(dst, "output would overwrite the input; inputs are never modified")


@app.command()
@_errors
def preprocess(
    src: Annotated[Path, typer.Argument(help="Input image, DICOM folder or DICOMDIR.")],
    dst: Annotated[Path, typer.Argument(help="Output image; format from the extension.")],
    orient: Annotated[
        str | None, typer.Option("--orient", help="Reorient, e.g. LPS or RAS.")
    ] = None,
    spacing: Annotated[
        str | None, typer.Option("--spacing", help="Resample to spacing, e.g. 1,1,1 (mm).")
    ] = None,
    n4: Annotated[bool, typer.Option("--n4", help="N4 bias-field correction (MRI).")] = False,
    denoise: Annotated[
        str | None, typer.Option("--denoise", help="gaussian, median, nlm or anisotropic.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="CT window preset (lung, bone, ...).")
    ] = None,
    level: Annotated[
        float | None, typer.Option("--level", help="Custom window level (with --width).")
    ] = None,
    width: Annotated[
        float | None, typer.Option("--width", help="Custom window width (with --level).")
    ] = None,
    zscore: Annotated[bool, typer.Option("--zscore", help="Z-score normalisation.")] = False,
    percentile: Annotated[
        str | None,
        typer.Option(
            "--percentile", help="Clip and scale to [0,1] between percentiles, e.g. 0.5,99.5."
        ),
    ] = None,
    clahe: Annotated[
        bool, typer.Option("--clahe", help="Contrast-limited adaptive histogram equalisation.")
    ] = False,
    equalize: Annotated[
        bool, typer.Option("--equalize", help="Global histogram equalisation.")
    ] = False,
    crop_foreground: Annotated[
        bool, typer.Option("--crop-foreground", help="Crop to the foreground box.")
    ] = False,
    size: Annotated[
        str | None, typer.Option("--size", help="Resize 2D (or pad/crop 3D) to size, e.g. 224,224.")
    ] = None,
    pipeline: Annotated[
        Path | None, typer.Option("--pipeline", help="Apply a saved pipeline JSON instead.")
    ] = None,
    save_pipeline: Annotated[
        Path | None, typer.Option("--save-pipeline", help="Write the steps as JSON.")
    ] = None,
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Preprocess: reorient, resample, N4, denoise, window/normalise, enhance, crop, resize.

    Steps run in that order; --pipeline applies a saved pipeline (the one a model bundle uses).
    """
    from medlabel.io import write_image
    from medlabel.preprocess.pipeline import Pipeline

    _refuse_overwrite_input(src, dst)
    if pipeline is not None:
        try:
            steps_pipe = Pipeline.from_json(pipeline.read_text())
        except OSError as exc:
            raise MedlabelError(pipeline, f"cannot read pipeline ({exc})") from exc
    else:
        steps: list[dict[str, Any]] = []
        if orient:
            steps.append({"op": "reorient", "orientation": orient})
        if spacing:
            steps.append({"op": "resample", "spacing": _floats(spacing, "--spacing")})
        if n4:
            steps.append({"op": "n4"})
        if denoise:
            steps.append({"op": "denoise", "method": denoise})
        if window or level is not None or width is not None:
            if window is None and (level is None or width is None):
                raise typer.BadParameter("give both --level and --width", param_hint="--level")
            steps.append({"op": "window", "preset": window, "level": level, "width": width})
        if zscore:
            steps.append({"op": "zscore"})
        if percentile:
            lo, hi = (_floats(percentile, "--percentile") or [0.5, 99.5])[:2]
            steps.append({"op": "percentile_scale", "lower": lo, "upper": hi})
        if clahe:
            steps.append({"op": "clahe"})
        if equalize:
            steps.append({"op": "equalize"})
        if crop_foreground:
            steps.append({"op": "crop_foreground"})
        if size:
            dims = [int(v) for v in _floats(size, "--size") or []]
            steps.append({"op": "resize" if len(dims) == 2 else "pad_or_crop", "size": dims})
        steps_pipe = Pipeline(steps)
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    result = steps_pipe(image)
    write_image(result, dst)
    if save_pipeline is not None:
        from medlabel.io.atomic import atomic_output

        with atomic_output(save_pipeline) as tmp:
            tmp.write_text(steps_pipe.to_json())
    typer.echo(
        f"wrote {dst} ({'x'.join(map(str, result.size))}, {result.dtype}; "
        f"{len(steps_pipe.steps)} step(s))"
    )


@app.command()
@_errors
def preview(
    src: Annotated[Path, typer.Argument(help="Image, DICOM folder or DICOMDIR.")],
    dst: Annotated[Path, typer.Argument(help="Output PNG.")],
    mask: Annotated[
        Path | None, typer.Option("--mask", help="Label map on the same grid to overlay.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="CT window preset, or LEVEL,WIDTH.")
    ] = None,
    slices: Annotated[int, typer.Option("--slices", help="Number of slices in the montage.")] = 12,
    tile: Annotated[int, typer.Option("--tile", help="Tile size in pixels.")] = 256,
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Write a PNG montage of slices (or the 2D image) with an optional coloured mask overlay."""
    from medlabel.io import read_label
    from medlabel.preprocess.window import WINDOW_PRESETS
    from medlabel.visualize.preview import render_preview

    win: str | tuple[float, float] | None = None
    if window is not None:
        if window in WINDOW_PRESETS:
            win = window
        else:
            values = _floats(window, "--window") or []
            if len(values) != 2:
                raise typer.BadParameter(
                    f"use a preset ({', '.join(WINDOW_PRESETS)}) or LEVEL,WIDTH",
                    param_hint="--window",
                )
            win = (values[0], values[1])
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    labels = read_label(mask, reference=image) if mask is not None else None
    render_preview(image, dst, mask=labels, window=win, slices=slices, tile=tile)
    typer.echo(f"wrote {dst}")


# --------------------------------------------------------------------------- classification
train_app = typer.Typer(help="Train models (writes a model bundle).", no_args_is_help=True)
app.add_typer(train_app, name="train")


DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="Training device: auto (a CUDA GPU if torch sees one), cpu, cuda."
    ),
]
FromReviewOpt = Annotated[
    Path | None,
    typer.Option(
        "--from-review",
        help="Train on the accepted and corrected results of this annotation job folder.",
    ),
]
ReviewModelOpt = Annotated[
    str | None,
    typer.Option("--review-model", help="With --from-review: whose results (model name)."),
]


def _reviewed_data(folder: Path, model: str | None, task: str) -> tuple[Path, str]:
    """Export reviewed results to a training CSV; returns it and the label mapping."""
    from medlabel.review.export import export_reviewed

    if not model:
        raise MedlabelError(folder, "--from-review needs --review-model NAME (whose results)")
    export = export_reviewed(folder, model)
    if export.task != task:
        raise MedlabelError(folder, f"model {model} is a {export.task} model, not {task}")
    typer.echo(f"training on {export.rows} reviewed result(s) of {model} ({export.path})")
    return export.path, export.labels


@train_app.command("classify")
@_errors
def train_classify(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="MedMNIST .npz, CSV manifest or class folders."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="auto, compact, resnet18, resnet34, resnet50, densenet121, efficientnet-b0, "
            "or classic:<logistic|svm|random-forest|gradient-boosting>.",
        ),
    ] = "auto",
    size: Annotated[
        int | None, typer.Option("--size", help="Input size in pixels (28/64/128/224).")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Maximum epochs.")] = None,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", help="CPU training budget per model.")
    ] = 10.0,
    ensemble: Annotated[
        int, typer.Option("--ensemble", help="Train N seeds and average them.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    flip: Annotated[
        bool | None, typer.Option("--flip/--no-flip", help="Allow flips (default: by data).")
    ] = None,
    licence: Annotated[
        str | None, typer.Option("--licence", help="Data licence for the model card.")
    ] = None,
    group_regex: Annotated[
        str | None,
        typer.Option("--group-regex", help="Regex finding the patient id in file names."),
    ] = None,
    device: DeviceOpt = "auto",
    from_review: FromReviewOpt = None,
    review_model: ReviewModelOpt = None,
) -> None:
    """Train a classifier and write a model bundle (weights, ONNX, preprocessing, card)."""
    from medlabel.classify.bundle import save_bundle, save_classic_bundle
    from medlabel.classify.classic import train_classic
    from medlabel.classify.recipe import auto_config
    from medlabel.classify.train import train_classifier
    from medlabel.data.sources import open_dataset
    from medlabel.devices import resolve_device

    resolve_device(device)  # a wrong --device fails before any data is read
    if from_review is not None:
        data, _ = _reviewed_data(from_review, review_model, "classification")
    if data is None:
        raise MedlabelError(None, "give --data DATA or --from-review JOB_FOLDER")
    dataset = open_dataset(data, group_pattern=group_regex)
    command = "medlabel " + " ".join(sys.argv[1:]) if sys.argv else None
    if model.startswith("classic:"):
        trained = train_classic(
            dataset, estimator=model.split(":", 1)[1], size=(size or 64,) * 2, seed=seed
        )
        path = save_classic_bundle(trained, out, licence=licence, command=command)
        typer.echo(f"wrote {path} (validation AUC {trained.val_metrics['auc']:.4f})")
        return
    cfg = auto_config(dataset, budget_minutes=budget_minutes, size=size, seed=seed)
    if model != "auto":
        cfg.model = model
        if model != "compact":
            cfg.model_kwargs = {}
    if epochs is not None:
        cfg.epochs = epochs
    if flip is not None:
        cfg.augment.flip = flip
    cfg.device = device
    members = []
    for k in range(ensemble):
        cfg_k = type(cfg).from_dict({**cfg.to_dict(), "seed": seed + k})
        members.append(train_classifier(dataset, cfg_k))
    if len(members) > 1:
        from medlabel.classify.ensemble import calibrate_ensemble

        temperature, threshold = calibrate_ensemble(members)
    else:
        temperature, threshold = members[0].temperature, members[0].threshold
    path = save_bundle(
        members, out, temperature=temperature, threshold=threshold, licence=licence, command=command
    )
    skipped = sum(len(m.failures) for m in members)
    typer.echo(
        f"wrote {path} ({cfg.model} {'x'.join(map(str, cfg.size))}, "
        f"validation AUC {members[0].val_metrics['auc']:.4f}"
        + (f", {skipped} unreadable image(s) skipped" if skipped else "")
        + ")"
    )


@train_app.command("segment")
@_errors
def train_segment(
    out: Annotated[Path, typer.Option("--out", help="Bundle folder to write.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="MSD folder (imagesTr/labelsTr), images/+masks/, CSV."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Mask value to class name, e.g. 150=lung_right,250=heart."),
    ] = None,
    dims: Annotated[
        int | None,
        typer.Option("--dims", help="2 or 3 (default: that of the images); 2 on volumes: slices."),
    ] = None,
    budget_minutes: Annotated[
        float, typer.Option("--budget-minutes", help="CPU training budget.")
    ] = 15.0,
    network: Annotated[
        str, typer.Option("--network", help="unet, resunet, basicunet or segresnet.")
    ] = "unet",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Cases held out for validation.")
    ] = 0.2,
    ensemble: Annotated[
        int, typer.Option("--ensemble", help="N > 1: N-fold cross-validation ensemble.")
    ] = 1,
    width: Annotated[
        int,
        typer.Option("--width", help="Channels of the first level (x2 per level, up to x8)."),
    ] = 16,
    elastic: Annotated[
        float,
        typer.Option("--elastic", help="Elastic deformation strength in voxels (0: off)."),
    ] = 0.0,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="auto (bfloat16 autocast where the CPU has it natively), bf16 or fp32.",
        ),
    ] = "auto",
    mirror: Annotated[
        str,
        typer.Option(
            "--mirror",
            help="Flips in augmentation and TTA: auto (left-right on volumes without "
            "left/right classes), all (every axis, as nnU-Net) or none.",
        ),
    ] = "auto",
    device: DeviceOpt = "auto",
    licence: Annotated[
        str | None, typer.Option("--licence", help="Data licence for the model card.")
    ] = None,
    from_review: FromReviewOpt = None,
    review_model: ReviewModelOpt = None,
) -> None:
    """Train a self-configuring U-Net and write a segmentation bundle (weights, ONNX, plan).

    The time budget is per network (an ensemble of N takes N times as long).
    """
    from medlabel.devices import resolve_device
    from medlabel.segment.augment import SegAugment
    from medlabel.segment.bundle import save_segmentation_bundle
    from medlabel.segment.dataset import open_segmentation_dataset
    from medlabel.segment.plan import MIRROR_CHOICES
    from medlabel.segment.train import SegTrainConfig, train_ensemble, train_segmenter

    resolve_device(device)  # a wrong --device fails before any data is read
    if mirror not in MIRROR_CHOICES:
        raise typer.BadParameter(", ".join(MIRROR_CHOICES), param_hint="--mirror")
    if from_review is not None:
        data, mapping = _reviewed_data(from_review, review_model, "segmentation")
        labels = labels or mapping
    if data is None:
        raise MedlabelError(None, "give --data DATA or --from-review JOB_FOLDER")
    dataset = open_segmentation_dataset(data, labels)
    image, _ = dataset.load(0)
    if dims is not None and dims > image.ndim:
        raise typer.BadParameter(
            f"the images are {image.ndim}D; a {dims}D model needs volumes", param_hint="--dims"
        )
    if precision not in ("auto", "bf16", "fp32"):
        raise typer.BadParameter("auto, bf16 or fp32", param_hint="--precision")
    cfg = SegTrainConfig(
        budget_minutes=budget_minutes,
        network=network,
        seed=seed,
        val_fraction=val_fraction,
        dims=dims if dims is not None and dims < image.ndim else None,
        width=width,
        bf16=None if precision == "auto" else precision == "bf16",
        augment=SegAugment(elastic=elastic),
        device=device,
        mirror=mirror,
    )
    trained = (
        train_ensemble(dataset, cfg, folds=ensemble)
        if ensemble > 1
        else [train_segmenter(dataset, cfg)]
    )
    command = "medlabel " + " ".join(sys.argv[1:]) if sys.argv else None
    path = save_segmentation_bundle(trained, out, licence=licence, command=command)
    dice = ", ".join(
        f"{c} {v['dice']['mean']:.4f}" for c, v in trained[0].val_metrics["classes"].items()
    )
    typer.echo(f"wrote {path} (validation Dice: {dice})")


@app.command()
@_errors
def segment(
    src: Annotated[Path, typer.Argument(help="Image, DICOM folder or DICOMDIR.")],
    model: Annotated[
        str, typer.Option("--model", help="Recipe (ct-lungs, ...), bundled model or bundle.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Mask file; format from the extension (.nii.gz, .nrrd, .mha, .png; .dcm: a "
            "DICOM SEG referencing a DICOM input).",
        ),
    ],
    overlay: Annotated[
        Path | None, typer.Option("--overlay", help="Also write a PNG overlay preview.")
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time mirroring (bundles).")] = False,
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Segment an image with a recipe or a model; the mask keeps the image's exact geometry."""
    import numpy as np

    from medlabel.io import write_image
    from medlabel.segment.api import open_segmenter
    from medlabel.segment.labelmap import label_names

    _refuse_overwrite_input(src, out)
    segmenter = open_segmenter(model)
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    seg = segmenter.segment(image, tta=tta)
    if out.suffix.lower() == ".dcm":
        _write_dicom_seg(seg, image, model, src, out)
    else:
        write_image(seg, out)
    if overlay is not None:
        from medlabel.visualize.preview import render_preview

        render_preview(image, overlay, mask=seg)
    voxel = float(np.prod(seg.spacing)) / (1000.0 if seg.ndim == 3 else 100.0)
    unit = "mL" if seg.ndim == 3 else "cm2"
    counts = np.bincount(seg.array.ravel().astype(np.int64), minlength=256)
    parts = [f"{v}={name} ({counts[v] * voxel:.1f} {unit})" for v, name in label_names(seg).items()]
    typer.echo(f"wrote {out}: " + ", ".join(parts))


def _write_dicom_seg(seg: Any, image: Any, model: str, src: Path, out: Path) -> None:
    """A DICOM SEG of ``seg`` that references the DICOM files ``image`` was read from."""
    from medlabel.annotate.models import model_version
    from medlabel.annotate.outputs import write_dicom_seg
    from medlabel.segment.labelmap import label_names

    files = image.metadata.get("source_files") or []
    if not files:
        raise MedlabelError(
            src,
            "a DICOM SEG (--out *.dcm) references DICOM images; this input is not DICOM, "
            "so write .nii.gz, .nrrd or .png instead",
        )
    why = write_dicom_seg(
        seg,
        label_names(seg),
        files,
        out,
        model_name=Path(model).name,
        model_version=model_version(model),
    )
    if why:
        raise MedlabelError(src, why)


@app.command()
@_errors
def annotate(
    src: Annotated[
        Path, typer.Argument(help="A file, a folder tree (DICOM, NIfTI, NRRD, PNG/JPEG) or a CSV.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (created; reruns resume).")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Bundle, bundled model or recipe; repeat for several. Default: the bundled "
            "models and the CT recipes, each where it fits.",
        ),
    ] = None,
    formats: Annotated[
        str, typer.Option("--formats", help="Mask outputs: nifti,dicom-seg,png,coco.")
    ] = "nifti,png",
    batch_size: Annotated[int, typer.Option("--batch-size", help="2D images per batch.")] = 16,
    workers: Annotated[int, typer.Option("--workers", help="Reader threads.")] = 2,
    tta: Annotated[
        bool, typer.Option("--tta", help="Test-time augmentation: segmentation agreement.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit with code 1 when any item failed.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local, or ray (Ray Data; same outputs).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Existing Ray cluster (default: start a local one)."),
    ] = None,
) -> None:
    """Annotate every image of an archive: labels, masks, manifest, review report.

    Exits with code 1 when nothing succeeded (or, with --strict, when anything failed).
    """
    from medlabel.annotate.job import annotate as run_job

    if out.exists() and not out.is_dir():
        raise MedlabelError(out, "the output must be a folder")
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    summary = run_job(
        src,
        out,
        models=model,
        formats=chosen,
        tta=tta,
        batch_size=batch_size,
        workers=workers,
        engine=_choice(engine, ("local", "ray"), "--engine"),
        ray_address=ray_address,
    )
    typer.echo(
        f"{summary.items} items: {summary.done} done, {summary.failed} failed, "
        f"{summary.skipped} skipped (no model applies), {summary.resumed} resumed; "
        f"{summary.seconds:.1f} s"
    )
    typer.echo(f"manifest: {summary.manifest}")
    typer.echo(f"report: {summary.report}")
    if (summary.items and summary.done == 0 and summary.resumed == 0) or (
        strict and summary.failed
    ):
        raise typer.Exit(code=1)


@app.command("next")
@_errors
def next_(
    folder: Annotated[Path, typer.Argument(help="Output folder of medlabel annotate.")],
    strategy: Annotated[
        str, typer.Option("--strategy", help="uncertainty, margin, random or diversity.")
    ] = "uncertainty",
    n: Annotated[int, typer.Option("--n", help="How many items.")] = 20,
    model: Annotated[str | None, typer.Option("--model", help="Only this model's results.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy.")] = 0,
    db: Annotated[
        str | None, typer.Option("--db", help="Store URL (default: SQLite in the folder).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The pending results a person should review next (active learning)."""
    from medlabel.review.active import STRATEGIES
    from medlabel.review.queue import next_items

    rows = next_items(
        folder, _choice(strategy, STRATEGIES, "--strategy"), n, model=model, seed=seed, db=db
    )
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        u = r.get("uncertainty")
        typer.echo(
            f"{r['item']}\t{r['model']}\t{r['label'] or '(nothing found)'}\t"
            f"uncertainty={'n/a' if u is None else f'{u:.3f}'}\t{r['source']}"
        )


@app.command()
@_errors
def review(
    folder: Annotated[Path, typer.Argument(help="Output folder of medlabel annotate.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
    db: Annotated[
        str | None, typer.Option("--db", help="Store URL (default: SQLite in the folder).")
    ] = None,
    add_user: Annotated[
        str | None,
        typer.Option(
            "--add-user",
            help="Create (or reset) this user, read the password from stdin, and exit.",
        ),
    ] = None,
    role: Annotated[str, typer.Option("--role", help="admin, reviewer or viewer.")] = "reviewer",
) -> None:
    """Start the review web UI for an annotation job (sign in with a user made by --add-user)."""
    from medlabel.review.schema import ROLES
    from medlabel.review.store import open_store

    if add_user:
        password = sys.stdin.readline().rstrip("\n")
        open_store(db or folder).add_user(add_user, _choice(role, ROLES, "--role"), password)
        typer.echo(f"user {add_user} ({role}) saved")
        return
    import uvicorn

    from medlabel.review.server import create_app

    app_ = create_app(folder, db=db)
    if not app_.state.store.progress()["total"]:
        typer.echo("note: the job has no finished results to review yet")
    typer.echo(f"review server on http://{host}:{port} (Ctrl+C stops it)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


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
    """Predict labels with calibrated confidences for a file, a folder or a dataset split."""
    from medlabel.classify.bundle import load_bundle
    from medlabel.classify.predict import predict_source, write_predictions

    bundle = load_bundle(model, engine=engine)
    rows = predict_source(bundle, source, split=split, tta=tta)
    write_predictions(rows, out)
    failed = sum(1 for r in rows if r.get("error"))
    typer.echo(f"wrote {out} ({len(rows)} row(s), {failed} failed)")


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
    """IBSI radiomics (PyRadiomics names) of labelled regions, or deep features with --model."""
    from medlabel.features import extract_many, write_features
    from medlabel.io import read_image, read_label

    if model is not None:
        from medlabel.classify.bundle import load_bundle

        bundle = load_bundle(model, engine="torch")
        sources = [p for _, p, _ in _pairs_or_single(image, None, pairs)] if pairs else [image]
        rows = []
        for src in sources:
            if src is None:
                raise typer.BadParameter("give an IMAGE or --pairs", param_hint="IMAGE")
            vector = bundle.embed(bundle.prepare(read_image(src))[None])[0]
            rows.append({"id": str(src), **{f"deep_{k}": float(v) for k, v in enumerate(vector)}})
        write_features(rows, out)
        typer.echo(f"wrote {out} ({len(rows)} row(s), {len(rows[0]) - 1} deep features)")
        return
    triples = _pairs_or_single(image, mask, pairs)
    items = [
        (
            item,
            (lambda p=img_path: read_image(p)),
            (lambda p=mask_path: read_label(p)),
        )
        for item, img_path, mask_path in triples
    ]
    rows = extract_many(items, label=label, params=params, progress=True)
    write_features(rows, out)
    failed = sum(1 for r in rows if r.get("error"))
    typer.echo(f"wrote {out} ({len(rows)} row(s), {failed} failed)")


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
        typer.Option("--split", help="Split to evaluate (classification default: test)."),
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time augmentation.")] = False,
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Segmentation masks: value to class, e.g. 150=lung_right."),
    ] = None,
) -> None:
    """Evaluate a model (or compare several): metrics.json and report.html per model."""
    rows = []
    for k, name in enumerate(model):
        target = out if len(model) == 1 else out / f"{k + 1}-{Path(name).name}"
        rows.append((name, _evaluate_one(name, data, target, split, tta, labels)))
    if len(model) > 1:
        lines = [
            "| model | n | " + " | ".join(rows[0][1][1]) + " |",
            "|---|---|" + "---|" * len(rows[0][1][1]),
        ]
        for name, (n, figures) in rows:
            lines.append(
                f"| {name} | {n} | " + " | ".join(f"{v:.4f}" for v in figures.values()) + " |"
            )
        table = "\n".join(lines)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(table + "\n")
        typer.echo(table)


def _evaluate_one(
    model: str, data: Path, out: Path, split: str | None, tta: bool, labels: str | None
) -> tuple[int, dict[str, float]]:
    """Evaluate one model; returns n and its headline figures."""
    from medlabel.segment.api import open_segmenter

    if _is_segmenter(model):
        from medlabel.segment.dataset import open_segmentation_dataset
        from medlabel.segment.evaluation import evaluate_segmenter

        result = evaluate_segmenter(
            open_segmenter(model),
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
        return int(result["n"]), {
            f"Dice {c}": float(v["dice"]["mean"]) for c, v in result["summary"].items()
        }
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
    figures = {"accuracy": float(metrics["accuracy"])}
    if auc is not None:
        figures["AUC"] = float(auc)
    return int(metrics["n"]), figures


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
