"""Commands that look at and convert images: info, convert, preprocess, preview.

Example:
    >>> from typer.testing import CliRunner
    >>> from medlabel.cli import app
    >>> CliRunner().invoke(app, ["info", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from medlabel.cli.app import (
    IndexOpt,
    IrregularOpt,
    RawMono1Opt,
    SeriesOpt,
    SplitOpt,
    TiltOpt,
    _errors,
    _floats,
    _read,
    _refuse_overwrite_input,
    app,
)
from medlabel.errors import MedlabelError


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
    warnings = list(image.metadata.get("warnings") or [])
    if not image.spacing_known:
        out["spacing_known"] = False
        if all(s == 1.0 for s in image.spacing):
            warnings.append(
                "the file gives no pixel size: 1 assumed, so lengths are in pixels, not mm"
            )
        else:
            warnings.append(
                "the file's resolution is a screen default (72 or 96 dpi), not a measured pixel "
                "size: the grid keeps it, as SimpleITK does, but lengths are reported in pixels"
            )
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
