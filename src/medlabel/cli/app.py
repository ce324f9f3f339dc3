"""The Typer application, its error handling and the options several commands share.

Example:
    >>> from medlabel.errors import MedlabelError
    >>> @_errors
    ... def broken() -> None:
    ...     raise MedlabelError("scan.dcm", "not a DICOM file")
    >>> try:  # prints "error: scan.dcm: not a DICOM file" on stderr
    ...     broken()
    ... except typer.Exit as stop:
    ...     print(stop.exit_code)
    1
"""

from __future__ import annotations

import functools
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
    help=(
        "Annotate and classify medical images (CT, MRI, X-ray): read, preprocess, segment, "
        "classify, annotate, review, evaluate."
    ),
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain(with_names=debug or verbose))
    if not debug:
        handler.addFilter(_no_foreign_tracebacks)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        handlers=[handler],
    )


def _no_foreign_tracebacks(record: logging.LogRecord) -> bool:
    """Keep other libraries' ``logger.exception`` records off stderr (shown with ``--debug``).

    pydicom, for one, logs every pixel-data plugin that fails with its traceback before raising;
    medlabel then reports the failure itself in one ``error:`` line. medlabel's own records and
    other libraries' plain warnings pass.

    Example:
        >>> boom = (ValueError, ValueError("bad"), None)
        >>> rec = logging.LogRecord("pydicom", logging.ERROR, "", 0, "decode", None, boom)
        >>> ours = logging.LogRecord("medlabel.io", logging.ERROR, "", 0, "x", None, boom)
        >>> _no_foreign_tracebacks(rec), _no_foreign_tracebacks(ours)
        (False, True)
    """
    ours = record.name == "medlabel" or record.name.startswith("medlabel.")
    return ours or not (record.exc_info or record.exc_text or record.stack_info)


class _Plain(logging.Formatter):
    """``warning: message``, like the commands' own messages (with the module's name under
    ``--verbose`` or ``--debug``).

    Example:
        >>> record = logging.LogRecord("medlabel.x", logging.WARNING, "", 0, "look", None, None)
        >>> _Plain().format(record), _Plain(with_names=True).format(record)
        ('warning: look', 'warning medlabel.x: look')
    """

    def __init__(self, *, with_names: bool = False) -> None:
        super().__init__()
        self.with_names = with_names

    def format(self, record: logging.LogRecord) -> str:
        where = f" {record.name}" if self.with_names else ""
        return f"{record.levelname.lower()}{where}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else ""
        )


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
IndexOpt = Annotated[
    int | None,
    typer.Option("--index", help="MedMNIST .npz: image index; 4D NIfTI/NRRD/MHA: volume index."),
]
SplitOpt = Annotated[str, typer.Option("--split", help="MedMNIST .npz: split (train/val/test).")]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="Segmentation bundles on torch: auto (bfloat16 on CPUs that compute in it "
        "natively, else float32), fp32 or bf16.",
    ),
]
RawMono1Opt = Annotated[
    bool,
    typer.Option("--keep-monochrome1", help="Do not invert MONOCHROME1 radiographs."),
]


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


def _precision(value: str) -> str:
    # medlabel.segment.bundle.PRECISIONS, spelt out: importing it would load torch at start
    return _choice(value, ("auto", "fp32", "bf16"), "--precision")


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


def _refuse_overwrite_input(src: Path, dst: Path) -> None:
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise MedlabelError(dst, "output would overwrite the input; inputs are never modified")
