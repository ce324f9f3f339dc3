"""Atomic output files: write to a temporary sibling, then rename over the target.

A reader never sees a half-written file under the final name, whether the process is killed or
the writer raises: the temporary file is removed on error.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result.txt"
    >>> with atomic_output(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text()
    'done'
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from medlabel.errors import WriteError
from medlabel.io.formats import full_suffix

__all__ = ["atomic_output", "check_output_path"]


def check_output_path(path: str | os.PathLike[str]) -> None:
    """Refuse, before any work is done, an output path that can never be written: one that
    is a folder, whose folder cannot exist because part of it is a file, or whose nearest
    existing folder one may not write in.

    Raises:
        WriteError: naming the path and the reason.

    Example:
        >>> import tempfile, pathlib
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> (tmp / "notes.txt").write_text("x")
        1
        >>> check_output_path(tmp / "new" / "out.nii.gz")  # missing folders are fine
        >>> try:
        ...     check_output_path(tmp / "notes.txt" / "out.nii.gz")
        ... except WriteError as err:
        ...     print(err.reason.replace(str(tmp), "TMP"))
        cannot create its folder: TMP/notes.txt is a file, not a folder
    """
    target = Path(path)
    if target.is_dir():
        raise WriteError(target, "is a folder; give a file name for the output")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise WriteError(
                    target, f"cannot create its folder: {parent} is a file, not a folder"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise WriteError(target, f"cannot write in {parent} (permission denied)")
            return


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder with the same suffix; rename on success.

    The temporary name keeps the full suffix (``.nii.gz``) so that writers that choose the
    format from the extension (SimpleITK, Pillow) behave as for the final name. Parent folders
    are created.

    Raises:
        WriteError: the target is a folder, or its folder cannot be created (part of the path
            is a file, no permission).
    """
    target = Path(path)
    check_output_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(
            target, f"cannot create its folder {target.parent}: {exc.strerror or exc}"
        ) from exc
    suffix = full_suffix(target)
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    tmp = target.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced no file at {tmp}")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
