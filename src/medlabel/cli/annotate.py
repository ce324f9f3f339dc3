"""Commands that label images: segment, annotate, next, review.

Example:
    >>> from typer.testing import CliRunner
    >>> from medlabel.cli import app
    >>> CliRunner().invoke(app, ["annotate", "--help"]).exit_code
    0
"""

from __future__ import annotations

import json
import os
import sys
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
    _refuse_overwrite_input,
    app,
)
from medlabel.errors import MedlabelError


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
        Path | None,
        typer.Option("--overlay", help="Also write an overlay preview (.png, .jpg, .tif or .bmp)."),
    ] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Test-time mirroring (bundles).")] = False,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="Where a model bundle runs: cpu, cuda[:N] or auto (a GPU if any)."
        ),
    ] = "cpu",
    precision: PrecisionOpt = "auto",
    series: SeriesOpt = None,
    irregular: IrregularOpt = "error",
    tilt: TiltOpt = "error",
    index: IndexOpt = None,
    split: SplitOpt = "test",
    keep_monochrome1: RawMono1Opt = False,
) -> None:
    """Segment an image with a recipe or a model; the mask keeps the image's exact geometry."""
    from medlabel.io import write_image
    from medlabel.segment.api import open_segmenter
    from medlabel.segment.labelmap import label_names, label_sizes

    _refuse_overwrite_input(src, out)
    if overlay is not None:  # a picture format it cannot write fails before any work
        from medlabel.visualize.preview import picture_format

        _refuse_overwrite_input(src, overlay)
        if overlay.absolute() == out.absolute() or (
            overlay.exists() and out.exists() and overlay.samefile(out)
        ):
            raise typer.BadParameter(
                f"{overlay} is the mask's own path (--out): the picture would replace the mask",
                param_hint="--overlay",
            )
        picture_format(overlay)
    segmenter = open_segmenter(model, device=device, precision=_precision(precision))
    if tta and segmenter.recipe is not None:
        typer.echo(
            f"note: --tta ignored: {model} is a recipe; test-time mirroring is for models", err=True
        )
    image = _read(src, series, irregular, tilt, index, split, keep_monochrome1)
    if segmenter.bundle is not None:  # one image: the quickest way to its mask
        segmenter.bundle.precision = segmenter.bundle.precision_for_one(image)
    try:
        seg, findings, notes = segmenter.segment_checked(image, tta=tta)
    except MedlabelError as err:  # images read from files do not record their path
        if err.path is not None:
            raise
        raise type(err)(src, err.reason) from err
    if out.suffix.lower() == ".dcm":
        _write_dicom_seg(seg, image, model, src, out)
    else:
        write_image(seg, out)
    if overlay is not None:
        from medlabel.visualize.preview import render_preview

        render_preview(image, overlay, mask=seg)
    known = image.spacing_known and seg.spacing_known
    sizes, unit = label_sizes(seg, known)
    digits = 1 if known else 0
    parts = [f"{v}={name} ({sizes[v]:.{digits}f} {unit})" for v, name in label_names(seg).items()]
    typer.echo(f"wrote {out}: " + ", ".join(parts))
    if not known:
        typer.echo(
            f"note: {src.name} gives no pixel size, so sizes are in {unit}, not mm", err=True
        )
    if findings:
        typer.echo(
            f"warning: this result does not look like those {segmenter.name} was trained on, "
            "so check that the image is the kind the model is for:",
            err=True,
        )
        for why in findings:
            typer.echo(f"  - {why}", err=True)
    for why in notes:
        typer.echo(f"note: {why}", err=True)


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
    notes: list[str] = []
    why = write_dicom_seg(
        seg,
        label_names(seg),
        files,
        out,
        model_name=Path(model).name,
        model_version=model_version(model),
        notes=notes,  # a source with empty Study/Series UIDs: written, with a note
    )
    if why:
        raise MedlabelError(src, why)
    for note in notes:
        typer.echo(f"note: {note}", err=True)


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
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            help="2D images per batch (at least 1; Ray sends blocks of at most 4 items).",
        ),
    ] = 16,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Reader threads (local engine), or Ray actors that each load the models "
            "(about 450 MB each). At least 1.",
        ),
    ] = 2,
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
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Where segmentation bundles run: cpu, cuda[:N] or auto (local engine).",
        ),
    ] = "cpu",
    precision: PrecisionOpt = "auto",
) -> None:
    """Annotate every image of an archive: labels, masks, manifest, review report.

    Exits with code 1 when nothing succeeded (or, with --strict, when anything failed).
    """
    from medlabel.annotate.job import annotate as run_job

    if out.exists() and not out.is_dir():
        raise MedlabelError(out, "the output must be a folder")
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    if not chosen:  # a job that writes no masks would report its results as done
        from medlabel.annotate.outputs import FORMATS

        raise typer.BadParameter(
            f"give one or more of {', '.join(FORMATS)} (comma-separated), not {formats!r}",
            param_hint="--formats",
        )
    for name, value in (("--batch-size", batch_size), ("--workers", workers)):
        if value < 1:
            raise typer.BadParameter(f"must be at least 1, not {value}", param_hint=name)
    engine = _choice(engine, ("local", "ray"), "--engine")
    if engine == "ray":
        _check_ray(ray_address, workers)
    summary = run_job(
        src,
        out,
        models=model,
        formats=chosen,
        tta=tta,
        batch_size=batch_size,
        workers=workers,
        engine=engine,
        ray_address=ray_address,
        device=device,
        precision=_precision(precision),
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


def _check_ray(address: str | None, workers: int) -> None:
    """Question a local Ray with more workers than CPU cores (each actor holds its own copy of
    the models). A cluster's address is checked by the job, before any work."""
    if address is not None:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cores and workers > cores:
        typer.echo(
            f"warning: --workers {workers} is more than this machine's {cores} CPU cores; "
            "each Ray actor loads the models (about 450 MB each) and they share the cores, "
            f"so --workers {cores} is usually as fast",
            err=True,
        )


@app.command("next")
@_errors
def next_(
    folder: Annotated[Path, typer.Argument(help="Output folder of medlabel annotate.")],
    strategy: Annotated[
        str, typer.Option("--strategy", help="uncertainty, margin, random or diversity.")
    ] = "uncertainty",
    n: Annotated[
        int,
        typer.Option(
            "--n",
            help="How many results (at least 1): an item with two models' results may "
            "appear twice.",
        ),
    ] = 20,
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

    if n < 1:
        raise typer.BadParameter(f"must be at least 1, not {n}", param_hint="--n")
    rows = next_items(
        folder, _choice(strategy, STRATEGIES, "--strategy"), n, model=model, seed=seed, db=db
    )
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo("nothing pending for review" + _failed_note(folder))
    for r in rows:
        u = r.get("uncertainty")
        typer.echo(
            f"{r['item']}\t{r['model']}\t{r['label'] or '(nothing found)'}\t"
            f"uncertainty={'n/a' if u is None else f'{u:.3f}'}\t{r['source']}"
        )


def _failed_note(folder: Path) -> str:
    """``"; N items failed ..."`` from the job's summary, when any did (they have no results
    to review); ``""`` otherwise."""
    try:
        failed = int(json.loads((folder / "summary.json").read_text()).get("failed") or 0)
    except (OSError, ValueError, AttributeError):
        return ""
    if not failed:
        return ""
    return f"; {failed} item(s) failed and have no results (see {folder / 'manifest.csv'})"


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
    from medlabel.review.store import job_manifest, open_store

    if db is None:
        job_manifest(folder)  # no store file in a folder that holds no job
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
