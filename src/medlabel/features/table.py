"""Feature tables: write the rows of :func:`medlabel.features.extract_many` as CSV or JSON.

CSV has one row per (image id, label) and a stable column order: ``id``, ``label``, ``error``,
then every feature name found in any row, sorted with numbers in numeric order (``deep_2``
before ``deep_10``). Missing values are empty cells; floats are written with full precision
(``repr``), NaN as ``nan``. JSON is a list of objects with the same keys in the same order,
``error`` being ``null`` for rows that succeeded and NaN/infinity ``null`` (strict JSON).
Files are written atomically.

Example:
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "features.csv"
    >>> write_features([{"id": "a", "label": 1, "original_firstorder_Mean": 2.5},
    ...                 {"id": "b", "label": 1, "error": "mask is empty"}], out)
    >>> print(out.read_text(), end="")
    id,label,error,original_firstorder_Mean
    a,1,,2.5
    b,1,mask is empty,
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.errors import WriteError
from medlabel.io.atomic import atomic_output, check_output_path

__all__ = ["FIRST_COLUMNS", "check_features_path", "feature_columns", "write_features"]

#: Columns that come first, in this order, before the sorted feature names.
FIRST_COLUMNS: tuple[str, ...] = ("id", "label", "error")


def _natural_key(name: str) -> tuple[list[str | int], str]:
    """Sort key that compares runs of digits as numbers (``deep_2`` before ``deep_10``)."""
    parts: list[str | int] = [
        int(part) if k % 2 else part for k, part in enumerate(re.split(r"(\d+)", name))
    ]
    return parts, name  # the name itself breaks ties such as deep_1 / deep_01


def feature_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The column order of a feature table: ``id``, ``label``, ``error``, then the feature
    names sorted with numbers in numeric order.

    Example:
        >>> feature_columns([{"label": 1, "id": "x", "b": 1.0}, {"id": "y", "a": 2.0}])
        ['id', 'label', 'error', 'a', 'b']
        >>> feature_columns([{"id": "x", "deep_10": 0.0, "deep_2": 0.0, "deep_1": 0.0}])
        ['id', 'label', 'error', 'deep_1', 'deep_2', 'deep_10']
    """
    names = {key for row in rows for key in row} - set(FIRST_COLUMNS)
    return [*FIRST_COLUMNS, *sorted(names, key=_natural_key)]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _csv_cell(value: Any) -> Any:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _json_value(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_features_path(out: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a feature table can be written at ``out``.

    The extension must be ``.csv`` or ``.json``, ``out`` must not be a folder, and its
    nearest existing parent must be a folder one may write in (missing parents are created
    when the table is written).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        WriteError: what is wrong with the path, in one line.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> check_features_path(folder / "new" / "f.csv").name
        'f.csv'
        >>> try:
        ...     check_features_path(folder / "f.txt")
        ... except WriteError as err:
        ...     print(err.reason)
        cannot write a feature table as .txt; use .csv or .json
    """
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        raise WriteError(path, "is a folder; give a .csv or .json file path (e.g. features.csv)")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise WriteError(
            path, f"cannot write a feature table as {suffix or '(no extension)'}; use .csv or .json"
        )
    check_output_path(path)  # its folder can be made and written in
    return path


def write_features(rows: Sequence[Mapping[str, Any]], out: str | os.PathLike[str]) -> None:
    """Write feature rows to ``.csv`` or ``.json`` (atomically: temporary file, then rename).

    Args:
        rows: dicts with ``id``, ``label`` and features, or ``error`` for failed items, as
            returned by :func:`medlabel.features.extract_many`.
        out: the output file; its extension chooses the format. Parent folders are created.

    Raises:
        WriteError: the extension is neither ``.csv`` nor ``.json``, ``out`` is a folder, or
            the file cannot be written (see :func:`check_features_path`).

    Example:
        >>> import json, pathlib, tempfile
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "features.json"
        >>> write_features([{"id": "a", "label": 2, "f": float("nan")}], out)
        >>> json.loads(out.read_text())
        [{'id': 'a', 'label': 2, 'error': None, 'f': None}]
    """
    path = check_features_path(out)
    suffix = path.suffix.lower()
    columns = feature_columns(rows)
    try:
        with atomic_output(path) as tmp:
            if suffix == ".csv":
                with tmp.open("w", newline="", encoding="utf-8") as fh:
                    writer = csv.writer(fh, lineterminator="\n")
                    writer.writerow(columns)
                    for row in rows:
                        writer.writerow([_csv_cell(row.get(c)) for c in columns])
            else:
                records = [
                    {c: _json_value(row.get(c)) for c in columns if c in row or c in FIRST_COLUMNS}
                    for row in rows
                ]
                text = json.dumps(records, indent=1, allow_nan=False, default=str)
                tmp.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise WriteError(path, f"cannot write feature table ({exc.strerror or exc})") from exc
