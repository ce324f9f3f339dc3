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

from medlabel.cli.app import app

# importing the command modules registers their commands, in the order --help lists them
# isort: off
from medlabel.cli import data  # noqa: F401
from medlabel.cli import train  # noqa: F401
from medlabel.cli import annotate  # noqa: F401
from medlabel.cli import models  # noqa: F401

# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
