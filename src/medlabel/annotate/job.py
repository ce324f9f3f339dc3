"""``medlabel annotate``: every item of an archive through every model that applies to it.

The job streams: items are read a few at a time by background threads (reading overlaps
with inference), 2D images are classified in batches, volumes one at a time, and each
(item, model) result is journaled as soon as its files are written. Nothing is ever written
into the input. At the end the manifest, ``coco.json`` and ``report.html`` are (re)written
from the journal, so a rerun of a killed job resumes where it stopped and still produces the
complete outputs.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from medlabel.io import write_image
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(chest_phantom()[0], root / "in" / "chest.nii.gz")
    >>> _ = (root / "in" / "broken.nii.gz").write_bytes(b"not a nifti")
    >>> s = annotate(root / "in", root / "out", models=["ct-lungs"], progress=False)
    >>> s.done, s.failed, (root / "out" / "report.html").is_file()
    (1, 1, True)
    >>> annotate(root / "in", root / "out", models=["ct-lungs"], progress=False).resumed
    1
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from medlabel.annotate.items import Item, discover
from medlabel.annotate.manifest import Journal, write_manifest
from medlabel.annotate.models import AnnotationModel, open_model
from medlabel.annotate.outputs import FORMATS, coco_document, write_json
from medlabel.annotate.runner import LoadedItem, Runner, is_2d, stream_items
from medlabel.errors import MedlabelError

__all__ = ["JobSummary", "annotate"]

log = logging.getLogger(__name__)


MAX_PASSED_OVER = 200
"""How many passed-over files ``summary.json`` and the report name (all are counted)."""


@dataclass
class JobSummary:
    """What a job did (also written to ``summary.json``)."""

    out: Path
    items: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    resumed: int = 0
    ignored_files: int = 0
    passed_over: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    manifest: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _specs(models: Sequence[str | os.PathLike[str]] | None) -> list[tuple[str, bool]]:
    """(name or absolute bundle path, chosen by the user) for every model of the job."""
    from medlabel.annotate.models import DEFAULT_RECIPES
    from medlabel.models import bundled_models, resolve_model
    from medlabel.segment.recipes import RECIPES

    if not models:
        return [(n, False) for n in [*bundled_models(), *DEFAULT_RECIPES]]
    out = []
    for m in models:
        name = str(m)
        out.append((name if name in RECIPES else str(resolve_model(m).resolve()), True))
    return out


def _run_local(
    items: list[Item],
    journal: Journal,
    runner: Runner,
    batch_size: int,
    workers: int,
    bar: Any,
    summary: JobSummary,
) -> float:
    """Stream items through ``runner`` in this process; returns the seconds spent reading."""
    read_seconds = 0.0
    pending: list[LoadedItem] = []

    def flush() -> None:
        if not pending:
            return
        journal.extend(runner.process(pending))
        bar.update(len(pending))
        pending.clear()

    for loaded in stream_items(items, journal, runner.models, runner.formats, max(1, workers)):
        read_seconds += loaded.seconds
        if loaded.resumed:
            summary.resumed += 1
            journal.relocate(
                loaded.item.id, loaded.item.files, loaded.hash, [m.id for m in runner.models]
            )
            bar.update(1)
            continue
        if not is_2d(loaded.image):
            flush()
            pending.append(loaded)
            flush()
        else:
            pending.append(loaded)
            if len(pending) >= batch_size:
                flush()
    flush()
    return read_seconds


def annotate(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    models: Sequence[str | os.PathLike[str]] | None = None,
    formats: Sequence[str] = ("nifti", "png"),
    tta: bool = False,
    batch_size: int = 16,
    workers: int = 2,
    engine: str = "local",
    ray_address: str | None = None,
    progress: bool = True,
    device: str = "cpu",
    precision: str = "auto",
) -> JobSummary:
    """Annotate every item below ``source`` with ``models`` (default: the bundled models and
    the CT recipes that fit each item), writing everything under ``out``.

    Args:
        source: a file, a folder tree or a CSV list (column ``path``).
        out: the output folder (created; a rerun resumes).
        models: recipe names, bundled or user model names, or bundle folders.
        formats: mask outputs among ``nifti``, ``dicom-seg``, ``png``, ``coco``.
        tta: test-time augmentation (segmentation agreement; flips for classifiers trained
            with them).
        batch_size: 2D images per classification batch (and per Ray batch).
        workers: reader threads (local) or model-holding actors (Ray).
        engine: ``local`` (this process, ``workers`` reader threads) or ``ray`` (Ray Data,
            ``workers`` actors each holding the models; see :mod:`.ray_engine`).
        ray_address: an existing Ray cluster (default: start a local one).
        progress: show a progress bar (on a terminal).
        device: where segmentation bundles run (``cpu``, ``cuda[:N]``, ``auto``; see
            :func:`~medlabel.segment.bundle.load_segmentation_bundle`); classifiers and
            recipes stay on the CPU. The Ray engine runs on the CPU (``auto`` means the CPU
            there).
        precision: of segmentation bundles' forward pass on torch: ``auto`` (bfloat16 on CPUs
            that compute in it natively), ``fp32`` or ``bf16``.

    Raises:
        MedlabelError: the input does not exist or holds no images, an unknown output format,
            model, engine or device, ``batch_size`` or ``workers`` below 1, a GPU with the Ray
            engine, a Ray address that cannot be reached, or an output folder that is the
            input itself.
    """
    start = time.perf_counter()
    src, target = Path(source), Path(out)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise MedlabelError(None, f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if engine not in ("local", "ray"):
        raise MedlabelError(None, f"unknown engine {engine!r}; choose local or ray")
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if value < 1:
            raise MedlabelError(None, f"{name} must be at least 1, not {value}")
    from medlabel.segment.bundle import PRECISIONS

    if precision not in PRECISIONS:
        raise MedlabelError(
            None, f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}"
        )
    from medlabel.devices import device_name

    if engine == "ray":
        if device.startswith("cuda"):
            raise MedlabelError(None, "the Ray engine runs on the CPU; use --engine local on a GPU")
        device = "cpu" if device == "auto" else device
        if ray_address is not None:  # before any model is opened or folder made
            from medlabel.annotate.ray_engine import check_address

            check_address(ray_address)
    on = device_name(device)
    if target.resolve() == src.resolve():
        raise MedlabelError(target, "the output folder must not be the input folder")
    specs = _specs(models)
    chosen = [
        open_model(name, explicit=explicit, device=on, precision=precision)
        for name, explicit in specs
    ]
    found = discover(src, exclude=target)
    if not found.items:  # a mistyped or empty folder is no success with 0 items
        others = f" ({found.ignored} file(s) that are not images)" if found.ignored else ""
        raise MedlabelError(src, f"no readable images found{others}")
    target.mkdir(parents=True, exist_ok=True)
    journal = Journal(target)
    runner = Runner(target, chosen, formats, tta)
    summary = JobSummary(
        out=target,
        items=len(found.items),
        ignored_files=found.ignored,
        passed_over=[  # the files set aside for a known reason (a DICOM SEG, a report)
            {"source": source, "reason": reason}
            for source, reason in found.passed_over[:MAX_PASSED_OVER]
        ],
    )
    bar = tqdm(
        total=len(found.items), desc="annotate", unit="item", disable=None if progress else True
    )
    if engine == "ray":
        from medlabel.annotate.ray_engine import run_ray

        timing = run_ray(
            found.items,
            journal,
            specs,
            tuple(formats),
            tta,
            batch_size,
            workers,
            ray_address,
            bar,
            summary,
            precision,
        )
    else:
        timing = {
            "read": _run_local(found.items, journal, runner, batch_size, workers, bar, summary),
            **runner.timing,
        }
    bar.close()
    rows = _current_rows(journal, [i.id for i in found.items], chosen)
    summary.done, summary.failed, summary.skipped = _item_counts(rows)
    summary.timing = timing
    summary.manifest = write_manifest(rows, target)[0]
    if "coco" in formats:
        write_json(coco_document(_coco_entries(rows, target)), target / "coco.json")
    summary.seconds = time.perf_counter() - start
    from medlabel.annotate.report import write_annotation_report

    summary.report = write_annotation_report(rows, summary, target)
    write_json(summary.to_dict(), target / "summary.json")
    return summary


def _current_rows(
    journal: Journal, order: list[str], models: Sequence[AnnotationModel]
) -> list[dict[str, Any]]:
    rows = []
    for item in order:
        for m in models:
            row = journal.rows.get((item, m.id))
            if row is not None:
                rows.append(row)
    return rows


def _item_counts(rows: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Items: any model failed; else at least one result; else no model applied."""
    by_item: dict[str, set[str]] = {}
    for r in rows:
        by_item.setdefault(r["item"], set()).add(str(r.get("status")))
    failed = sum(1 for s in by_item.values() if "failed" in s)
    done = sum(1 for s in by_item.values() if "done" in s and "failed" not in s)
    skipped = len(by_item) - done - failed
    return done, failed, skipped


def _coco_entries(rows: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    import json

    entries = []
    for r in rows:
        rel = (r.get("outputs") or {}).get("coco")
        if rel and (out / rel).is_file():
            entries.append(json.loads((out / rel).read_text()))
    return entries
