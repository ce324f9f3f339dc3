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
        from medlabel.io.raster import DISPLAY_DPI

        screen = [25.4 / d for d in DISPLAY_DPI]
        if all(s == 1.0 for s in image.spacing):
            warnings.append(
                "the file gives no pixel size: 1 assumed, so lengths are in pixels, not mm"
            )
        elif all(any(abs(s - v) < 1e-4 for v in screen) for s in image.spacing):
            warnings.append(
                "the file's resolution is a screen default (72 or 96 dpi), not a measured pixel "
                "size: the grid keeps it, as SimpleITK does, but lengths are reported in pixels"
            )
        else:  # e.g. a resized copy of an image that had none: the spacing is relative
            warnings.append(
                "the file gives no physical pixel size (its grid spacing is relative, e.g. from "
                "resizing an image that had none): lengths are reported in pixels"
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
    """Convert between formats keeping exact geometry: NIfTI, NRRD and MHA/MHD for any image,
    PNG and TIFF for 2D images (an X-ray, a photograph) only."""
    from medlabel.io import write_image
    from medlabel.io.atomic import check_output_path

    _refuse_overwrite_input(src, dst)
    check_output_path(dst)
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1, label)
    write_image(image, dst)
    typer.echo(f"wrote {dst} ({_stored(dst, image)})")


def _stored(dst: Path, image: Any) -> str:
    """Size and pixel type of what was written: pictures (PNG, TIFF) may hold another type
    than the image had (a 0..1 float image is stored as 8-bit), so they are read back.

    Example:
        >>> import numpy as np, tempfile
        >>> from medlabel.image import MedicalImage
        >>> from medlabel.io import write_image
        >>> img = MedicalImage(np.full((4, 6), 0.5, np.float32))
        >>> path = Path(tempfile.mkdtemp()) / "half.png"
        >>> write_image(img, path)
        >>> _stored(path, img)
        '6x4, uint8 (converted from float32)'
    """
    from medlabel.io import read_image
    from medlabel.io.formats import full_suffix

    size = "x".join(map(str, image.size))
    dtype = str(image.dtype)
    if full_suffix(dst) in (".png", ".tif", ".tiff"):
        written = read_image(dst)
        size = "x".join(map(str, written.size))
        if str(written.dtype) != dtype:
            return f"{size}, {written.dtype} (converted from {dtype})"
    return f"{size}, {dtype}"


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
        str | None,
        typer.Option(
            "--denoise",
            help="gaussian, median, nlm or anisotropic (nlm filters thick-slice volumes "
            "slice by slice).",
        ),
    ] = None,
    sigma_mm: Annotated[
        float | None,
        typer.Option(
            "--sigma-mm",
            help="Width of --denoise gaussian in mm (default: the finest voxel spacing).",
        ),
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
    crop_threshold: Annotated[
        str,
        typer.Option(
            "--crop-threshold",
            help="Foreground for --crop-foreground: 'auto' (above -500 HU for CT, Otsu's "
            "threshold otherwise), 'otsu', 'nonzero', or a value (voxels above it).",
        ),
    ] = "auto",
    size: Annotated[
        str | None,
        typer.Option(
            "--size",
            help="X,Y resizes a 2D image or a one-slice volume (e.g. 224,224); X,Y,Z pads or "
            "crops a volume about its centre.",
        ),
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
    from medlabel.errors import PreprocessError
    from medlabel.io import write_image
    from medlabel.io.atomic import check_output_path
    from medlabel.preprocess.pipeline import Pipeline

    _refuse_overwrite_input(src, dst)
    check_output_path(dst)
    if save_pipeline is not None:
        check_output_path(save_pipeline)
    if pipeline is not None:
        try:
            steps_pipe = Pipeline.from_json(pipeline.read_text())
        except OSError as exc:
            raise MedlabelError(pipeline, f"cannot read pipeline ({exc})") from exc
        except PreprocessError as exc:
            raise MedlabelError(pipeline, exc.reason) from exc
    else:
        steps = _preprocess_steps(
            orient=orient,
            spacing=spacing,
            n4=n4,
            denoise=denoise,
            sigma_mm=sigma_mm,
            window=window,
            level=level,
            width=width,
            zscore=zscore,
            percentile=percentile,
            clahe=clahe,
            equalize=equalize,
            crop_foreground=crop_foreground,
            crop_threshold=crop_threshold,
            size=size,
        )
        try:
            steps_pipe = Pipeline(steps)
        except PreprocessError as exc:
            raise MedlabelError(src, exc.reason) from exc
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    ops = [step["op"] for step in steps_pipe.steps]
    resizes_volume = image.ndim == 3 and image.size[2] > 1
    if pipeline is None and "resize" in ops and "resample" not in ops and resizes_volume:
        raise MedlabelError(
            src,
            f"--size X,Y resizes a 2D image or a one-slice volume; this is a volume of "
            f"{image.size[2]} slices: give --size X,Y,Z to pad or crop it, or --spacing "
            "to resample it",
        )
    try:
        result = steps_pipe(image)
    except MedlabelError as exc:
        if exc.path is None:  # name the input the step failed on
            raise type(exc)(src, exc.reason) from exc
        raise
    write_image(result, dst)
    if save_pipeline is not None:
        from medlabel.io.atomic import atomic_output

        with atomic_output(save_pipeline) as tmp:
            tmp.write_text(steps_pipe.to_json())
    typer.echo(f"wrote {dst} ({_stored(dst, result)}; {len(steps_pipe.steps)} step(s))")


def _numbers(text: str, option: str, count: tuple[int, ...], what: str) -> list[float]:
    """Comma-separated numbers of an option, refused unless there are ``count`` of them."""
    values = _floats(text, option) or []
    if len(values) not in count:
        raise typer.BadParameter(f"expected {what}, got {text!r}", param_hint=option)
    return values


def _preprocess_steps(
    *,
    orient: str | None,
    spacing: str | None,
    n4: bool,
    denoise: str | None,
    sigma_mm: float | None,
    window: str | None,
    level: float | None,
    width: float | None,
    zscore: bool,
    percentile: str | None,
    clahe: bool,
    equalize: bool,
    crop_foreground: bool,
    crop_threshold: str,
    size: str | None,
) -> list[dict[str, Any]]:
    """The pipeline steps the preprocess options ask for, every value checked first.

    Raises:
        typer.BadParameter: an option value of the wrong form or range (one line, exit 1).

    Example:
        >>> _preprocess_steps(orient=None, spacing=None, n4=False, denoise="gaussian",
        ...     sigma_mm=None, window=None, level=None, width=None, zscore=False,
        ...     percentile="1,99", clahe=False, equalize=False, crop_foreground=True,
        ...     crop_threshold="auto", size="224,224")  # doctest: +NORMALIZE_WHITESPACE
        [{'op': 'denoise', 'method': 'gaussian'},
         {'op': 'percentile_scale', 'lower': 1.0, 'upper': 99.0},
         {'op': 'crop_foreground', 'threshold': 'auto'},
         {'op': 'resize', 'size': [224, 224]}]
    """
    from medlabel.preprocess.denoise import DENOISE_METHODS

    steps: list[dict[str, Any]] = []
    if orient:
        steps.append({"op": "reorient", "orientation": orient})
    if spacing:
        values = _numbers(spacing, "--spacing", (2, 3), "2 or 3 spacings in mm, e.g. 1,1,1")
        if not all(v > 0 and v != float("inf") for v in values):
            raise typer.BadParameter(
                f"spacings must be > 0, got {spacing!r}", param_hint="--spacing"
            )
        steps.append({"op": "resample", "spacing": values})
    if n4:
        steps.append({"op": "n4"})
    if sigma_mm is not None and denoise != "gaussian":
        raise typer.BadParameter("goes with --denoise gaussian", param_hint="--sigma-mm")
    if denoise:
        if denoise not in DENOISE_METHODS:
            raise typer.BadParameter(
                f"{denoise!r} is not one of {', '.join(DENOISE_METHODS)}", param_hint="--denoise"
            )
        step: dict[str, Any] = {"op": "denoise", "method": denoise}
        if sigma_mm is not None:
            if not sigma_mm > 0:
                raise typer.BadParameter(f"must be > 0 mm, got {sigma_mm}", param_hint="--sigma-mm")
            step["sigma_mm"] = sigma_mm
        steps.append(step)
    if window or level is not None or width is not None:
        if window is None and (level is None or width is None):
            raise typer.BadParameter("give both --level and --width", param_hint="--level")
        steps.append({"op": "window", "preset": window, "level": level, "width": width})
    if zscore:
        steps.append({"op": "zscore"})
    if percentile:
        lo, hi = _numbers(
            percentile, "--percentile", (2,), "LOWER,UPPER percentiles, e.g. 0.5,99.5"
        )
        if not 0 <= lo < hi <= 100:
            raise typer.BadParameter(
                f"needs 0 <= LOWER < UPPER <= 100, got {percentile!r}", param_hint="--percentile"
            )
        steps.append({"op": "percentile_scale", "lower": lo, "upper": hi})
    if clahe:
        steps.append({"op": "clahe"})
    if equalize:
        steps.append({"op": "equalize"})
    if crop_foreground:
        threshold: float | str = crop_threshold.strip().lower()
        if threshold not in ("auto", "otsu", "nonzero"):
            try:
                threshold = float(crop_threshold)
            except ValueError:
                raise typer.BadParameter(
                    f"use auto, otsu, nonzero or a number, got {crop_threshold!r}",
                    param_hint="--crop-threshold",
                ) from None
        steps.append({"op": "crop_foreground", "threshold": threshold})
    if size:
        dims = _numbers(size, "--size", (2, 3), "X,Y (resize) or X,Y,Z (pad/crop) voxels")
        if not all(d >= 1 and d == int(d) for d in dims):
            raise typer.BadParameter(
                f"sizes are whole numbers >= 1, got {size!r}", param_hint="--size"
            )
        sizes = [int(d) for d in dims]
        steps.append({"op": "resize" if len(sizes) == 2 else "pad_or_crop", "size": sizes})
    return steps


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
    """Write a PNG montage of slices (or the 2D image) with an optional coloured mask overlay.

    A mask holding the image's voxel centres in another axis order or direction (a LAS
    NIfTI for an LPS series) is reordered onto the image grid; any other grid is refused.
    """
    from medlabel.io import read_label
    from medlabel.io.atomic import check_output_path
    from medlabel.preprocess.window import WINDOW_PRESETS
    from medlabel.visualize.preview import MAX_TILE, MIN_TILE, picture_format, render_preview

    if slices < 1:
        raise typer.BadParameter(f"must be at least 1, got {slices}", param_hint="--slices")
    if not MIN_TILE <= tile <= MAX_TILE:
        raise typer.BadParameter(
            f"must be {MIN_TILE} to {MAX_TILE} pixels, got {tile}", param_hint="--tile"
        )
    win: str | tuple[float, float] | None = None
    if window is not None:
        if window in WINDOW_PRESETS:
            win = window
        else:
            try:
                values = [float(v) for v in window.split(",")]
            except ValueError:
                values = []
            if len(values) != 2 or not values[1] > 0:
                raise typer.BadParameter(
                    f"{window!r} is neither a preset ({', '.join(WINDOW_PRESETS)}) nor "
                    "LEVEL,WIDTH (e.g. 40,400; WIDTH > 0)",
                    param_hint="--window",
                )
            win = (values[0], values[1])
    _refuse_overwrite_input(src, dst)
    picture_format(dst)
    check_output_path(dst)
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    labels = None
    if mask is not None:
        labels = read_label(mask, reference=image)  # a flipped lattice: reordered
    picture = render_preview(image, dst, mask=labels, window=win, slices=slices, tile=tile)
    typer.echo(f"wrote {dst} ({picture.size[0]}x{picture.size[1]} pixels)")
