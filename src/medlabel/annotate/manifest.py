"""The job's record: a journal that makes reruns resume, and the manifest users read.

Each finished (item, model) pair is appended to ``DIR/.medlabel/journal.jsonl`` as one JSON
line and flushed at once, so killing the job loses at most the pairs in progress; the file
is synced to the disk after every batch; a torn last line is ignored on reading. A rerun
skips a pair whose journal row is ``done`` or ``skipped`` for the same content hash, model id
and output formats, and whose output files still exist; failed or changed pairs are redone.

``manifest.csv`` and ``manifest.jsonl`` are rewritten atomically from the journal at the end
of a job (one row per item and model). The CSV holds the columns every tool reads
(``item, source, modality, model, status, error, label, confidence, uncertainty,
p_<class>..., mask, seconds, ood, notes``: ``ood`` is ``True`` where the input lies outside
the model's training distribution, ``notes`` says why and what else to know, joined by
``; ``); the JSONL holds everything, including the other outputs and per-class figures.

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> j = Journal(out)
    >>> j.append({"item": "a", "model": "m", "model_id": "m@1", "status": "done",
    ...           "hash": "h", "formats": ["png"], "outputs": {}})
    >>> Journal(out).finished("a", "m@1", "h", ("png",)) is not None
    True
    >>> Journal(out).finished("a", "m@1", "changed", ("png",)) is None
    True
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medlabel.io.atomic import atomic_output

__all__ = ["CSV_COLUMNS", "Journal", "write_manifest"]

CSV_COLUMNS = [
    "item",
    "source",
    "modality",
    "model",
    "status",
    "error",
    "label",
    "confidence",
    "uncertainty",
]
_TAIL = ["mask", "seconds", "ood", "notes"]


class Journal:
    """Append-only record of finished (item, model) pairs in ``out/.medlabel/journal.jsonl``."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.path = self.out / ".medlabel" / "journal.jsonl"
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._files: dict[str, list[str]] = {}  # item -> the file names its rows recorded
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line from a killed run
                self._keep(row)

    def finished(
        self, item: str, model_id: str, content: str, formats: Sequence[str]
    ) -> dict[str, Any] | None:
        """The earlier row for this pair when it can be reused, else ``None``."""
        row = self.rows.get((item, model_id))
        if row is None or row.get("status") not in ("done", "skipped"):
            return None
        if row.get("hash") != content or not set(formats) <= set(row.get("formats", [])):
            return None
        for rel in (row.get("outputs") or {}).values():
            if not (self.out / rel).is_file():
                return None
        return row

    def _keep(self, row: dict[str, Any]) -> None:
        self.rows[(row["item"], row["model_id"])] = row
        self._files[row["item"]] = list(row.get("files") or [])

    def recorded_files(self, item: str) -> list[str] | None:
        """The file names an earlier run recorded for ``item`` (``None``: no row)."""
        return self._files.get(item)

    def relocate(
        self, item: str, files: Sequence[str], content: str, model_ids: Sequence[str]
    ) -> None:
        """Record the current file names (and their content hash) for finished rows that
        named the same files differently (relative paths of older versions)."""
        moved = [
            {**row, "files": list(files), "hash": content}
            for m in model_ids
            if (row := self.rows.get((item, m))) is not None and row.get("files") != list(files)
        ]
        self.extend(moved)

    def append(self, row: dict[str, Any]) -> None:
        """Record a finished pair (written through to the operating system at once)."""
        self.extend([row])

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Record finished pairs: written at once, so a killed job keeps them, and synced to
        the disk once per call, so a power cut loses at most this call's rows."""
        rows = list(rows)
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=str) + "\n")
                fh.flush()
                self._keep(row)
            os.fsync(fh.fileno())


def write_manifest(rows: Iterable[dict[str, Any]], out: str | os.PathLike[str]) -> list[Path]:
    """``manifest.csv`` and ``manifest.jsonl`` in ``out`` (atomically)."""
    rows = list(rows)
    probs = sorted({k for r in rows for k in r if k.startswith("p_")})
    columns = CSV_COLUMNS + probs + _TAIL
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r.get(c) is None else _cell(r.get(c)) for c in columns})
    target = Path(out)
    paths = [target / "manifest.csv", target / "manifest.jsonl"]
    with atomic_output(paths[0]) as tmp:
        tmp.write_text(buf.getvalue())
    with atomic_output(paths[1]) as tmp:
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return paths


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value
