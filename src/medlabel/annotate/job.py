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
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from medlabel.annotate.items import Item, content_hash, discover, read_item
from medlabel.annotate.manifest import Journal, write_manifest
from medlabel.annotate.models import AnnotationModel, Segmentation, effective_modality, open_model
from medlabel.annotate.outputs import (
    FORMATS,
    coco_annotations,
    coco_document,
    output_path,
    write_dicom_seg,
    write_json,
    write_nifti,
    write_overlay,
)
from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage

__all__ = ["JobSummary", "annotate"]

log = logging.getLogger(__name__)


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
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    manifest: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class _Loaded:
    item: Item
    hash: str
    image: MedicalImage | None = None
    error: str = ""
    resumed: bool = False  # every model's result is already in the journal
    seconds: float = 0.0
    modality: str = ""  # effective modality, worked out once per item


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MedlabelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Runner:
    """Applies the models to loaded items and writes their outputs (engine-independent)."""

    def __init__(
        self,
        out: Path,
        models: Sequence[AnnotationModel],
        formats: Sequence[str],
        tta: bool,
    ) -> None:
        self.out, self.models, self.formats, self.tta = out, list(models), tuple(formats), tta
        self.timing: dict[str, float] = {}

    def _base(self, loaded: _Loaded, model: AnnotationModel) -> dict[str, Any]:
        image = loaded.image
        return {
            "item": loaded.item.id,
            "source": loaded.item.source,
            "modality": loaded.modality or loaded.item.modality or "",
            "modality_from_intensities": bool(
                image is not None and loaded.modality and not image.modality
            ),
            "model": model.name,
            "model_id": model.id,
            "task": model.kind,
            "status": "done",
            "error": "",
            "label": "",
            "confidence": None,
            "uncertainty": None,
            "mask": "",
            "seconds": 0.0,
            "hash": loaded.hash,
            "kind": loaded.item.kind,
            "files": list(loaded.item.files),
            "series_uid": loaded.item.series_uid,
            "formats": list(self.formats),
            "outputs": {},
        }

    def thumbnail(self, loaded: _Loaded) -> str:
        """A small picture of the item for the report (written once)."""
        rel = Path("thumbs") / f"{loaded.item.id}.png"
        if loaded.image is not None and not (self.out / rel).is_file():
            try:
                from medlabel.visualize.preview import render_thumbnail

                window = (40.0, 400.0) if loaded.modality == "CT" else None
                render_thumbnail(loaded.image, self.out / rel, window=window)
            except Exception as exc:  # a picture must never fail the job
                log.warning("thumbnail of %s: %s", loaded.item.source, exc)
                return ""
        return rel.as_posix()

    def process(self, batch: list[_Loaded]) -> list[dict[str, Any]]:
        """Rows for every (item, model) pair of ``batch`` (items already read)."""
        rows: list[dict[str, Any]] = []
        thumbs = {b.item.id: self.thumbnail(b) for b in batch}
        for model in self.models:
            todo: list[_Loaded] = []
            for b in batch:
                row = self._base(b, model)
                row["thumbnail"] = thumbs[b.item.id]
                if b.image is None:
                    row.update(status="failed", error=b.error)
                    rows.append(row)
                    continue
                reason = model.skip_reason(b.image, b.modality)
                if reason:
                    row.update(status="skipped", error=reason)
                    rows.append(row)
                    continue
                todo.append(b)
            if not todo:
                continue
            if model.kind == "classification":
                rows += self._classify(model, todo, thumbs)
            else:
                rows += self._segment_batch(model, todo, thumbs)
        return rows

    def _classify(
        self, model: AnnotationModel, todo: list[_Loaded], thumbs: dict[str, str]
    ) -> list[dict[str, Any]]:
        start = time.perf_counter()
        rows = []
        try:
            results = model.classify([b.image for b in todo if b.image is not None], tta=self.tta)
            errors = [""] * len(todo)
        except Exception:  # one bad image must not fail its batch: retry one at a time
            results, errors = [], []
            for b in todo:
                try:
                    assert b.image is not None
                    results += model.classify([b.image], tta=self.tta)
                    errors.append("")
                except Exception as exc:
                    results.append(None)  # type: ignore[arg-type]
                    errors.append(_reason(exc))
        each = (time.perf_counter() - start) / len(todo)
        self.timing[model.name] = self.timing.get(model.name, 0.0) + each * len(todo)
        for b, res, err in zip(todo, results, errors, strict=True):
            row = self._base(b, model)
            row["thumbnail"] = thumbs[b.item.id]
            row["seconds"] = each
            if err or res is None:
                row.update(status="failed", error=err)
            else:
                row.update(label=res.label, confidence=res.confidence, uncertainty=res.uncertainty)
                row.update({f"p_{k}": v for k, v in res.probs.items()})
                row.update(res.extra)
            rows.append(row)
        return rows

    def _segment_batch(
        self, model: AnnotationModel, todo: list[_Loaded], thumbs: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Segment 2D items as one batch (volumes one at a time); outputs per item."""
        if len(todo) > 1 and all(_is_2d(b.image) for b in todo):
            start = time.perf_counter()
            try:
                segs = model.segment_many(
                    [b.image for b in todo if b.image is not None], tta=self.tta
                )
            except Exception:  # one bad image must not fail its batch: one at a time
                return [self._segment(model, b, thumbs[b.item.id]) for b in todo]
            each = (time.perf_counter() - start) / len(todo)
            return [
                self._segment(model, b, thumbs[b.item.id], seg=seg, seconds=each)
                for b, seg in zip(todo, segs, strict=True)
            ]
        return [self._segment(model, b, thumbs[b.item.id]) for b in todo]

    def _segment(
        self,
        model: AnnotationModel,
        b: _Loaded,
        thumb: str,
        *,
        seg: Segmentation | None = None,
        seconds: float = 0.0,
    ) -> dict[str, Any]:
        row = self._base(b, model)
        row["thumbnail"] = thumb
        start = time.perf_counter()
        assert b.image is not None
        try:
            if seg is None:
                seg = model.segment(b.image, tta=self.tta)
            row.update(label=seg.label, uncertainty=seg.uncertainty, **seg.extra)
            row["volumes_ml" if seg.unit == "mL" else "areas_cm2"] = seg.sizes
            row["outputs"], notes = self._write_mask(b, model, seg.mask, seg.classes)
            row["mask"] = row["outputs"].get("nifti", next(iter(row["outputs"].values()), ""))
            if notes:
                row["notes"] = notes
        except Exception as exc:
            row.update(status="failed", error=_reason(exc), outputs={})
        row["seconds"] = seconds + time.perf_counter() - start
        self.timing[model.name] = self.timing.get(model.name, 0.0) + row["seconds"]
        return row

    def _write_mask(
        self, b: _Loaded, model: AnnotationModel, mask: MedicalImage, classes: dict[int, str]
    ) -> tuple[dict[str, str], list[str]]:
        assert b.image is not None
        outputs: dict[str, str] = {}
        notes: list[str] = []
        rel = {
            "nifti": output_path(Path(), b.item.id, model.name, ".nii.gz"),
            "dicom-seg": output_path(Path(), b.item.id, model.name, ".seg.dcm"),
            "png": output_path(Path(), b.item.id, model.name, ".png"),
            "coco": output_path(Path(), b.item.id, model.name, ".coco.json"),
        }
        if "nifti" in self.formats:
            write_nifti(mask, self.out / rel["nifti"])
            outputs["nifti"] = rel["nifti"].as_posix()
        if "dicom-seg" in self.formats:
            files = b.image.metadata.get("source_files") or []
            if not b.item.kind.startswith("dicom"):
                notes.append("dicom-seg: the input is not DICOM")
            else:
                why = write_dicom_seg(
                    mask,
                    classes,
                    files,
                    self.out / rel["dicom-seg"],
                    model_name=model.name,
                    model_version=model.version,
                )
                if why:
                    notes.append(f"dicom-seg: {why}")
                else:
                    outputs["dicom-seg"] = rel["dicom-seg"].as_posix()
        if "png" in self.formats:
            window = (40.0, 400.0) if b.modality == "CT" else None
            write_overlay(b.image, mask, self.out / rel["png"], window=window)
            outputs["png"] = rel["png"].as_posix()
        if "coco" in self.formats:
            anns = coco_annotations(mask, classes)
            if mask.ndim == 2 or mask.array.shape[0] == 1:
                shape = mask.array.shape[-2:]
                write_json(
                    {
                        "item": b.item.id,
                        "file_name": b.item.source,
                        "width": int(shape[1]),
                        "height": int(shape[0]),
                        "model": model.name,
                        "annotations": anns,
                    },
                    self.out / rel["coco"],
                )
                outputs["coco"] = rel["coco"].as_posix()
            else:
                notes.append("coco: 3D masks are not written as COCO")
        return outputs, notes


def _load(
    item: Item, journal: Journal, models: Sequence[AnnotationModel], formats: Sequence[str]
) -> _Loaded:
    start = time.perf_counter()
    digest = content_hash(item)
    earlier = [journal.finished(item.id, m.id, digest, formats) for m in models]
    if all(r is not None for r in earlier):
        return _Loaded(item, digest, resumed=True)
    try:
        image = read_item(item)
        return _Loaded(
            item,
            digest,
            image=image,
            seconds=time.perf_counter() - start,
            modality=effective_modality(image),
        )
    except Exception as exc:
        return _Loaded(item, digest, error=_reason(exc), seconds=time.perf_counter() - start)


def _stream(
    items: Iterable[Item],
    journal: Journal,
    models: Sequence[AnnotationModel],
    formats: Sequence[str],
    workers: int,
) -> Iterator[_Loaded]:
    """Items read in order by ``workers`` threads, at most ``2 * workers`` ahead."""
    ahead = max(1, 2 * workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue: deque[Future[_Loaded]] = deque()
        iterator = iter(items)
        for item in iterator:
            queue.append(pool.submit(_load, item, journal, models, formats))
            if len(queue) >= ahead:
                break
        while queue:
            done = queue.popleft().result()
            nxt = next(iterator, None)
            if nxt is not None:
                queue.append(pool.submit(_load, nxt, journal, models, formats))
            yield done


def _is_2d(image: MedicalImage | None) -> bool:
    return image is not None and (image.ndim == 2 or image.array.shape[0] == 1)


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
    runner: _Runner,
    batch_size: int,
    workers: int,
    bar: Any,
    summary: JobSummary,
) -> float:
    """Stream items through ``runner`` in this process; returns the seconds spent reading."""
    read_seconds = 0.0
    pending: list[_Loaded] = []

    def flush() -> None:
        if not pending:
            return
        journal.extend(runner.process(pending))
        bar.update(len(pending))
        pending.clear()

    for loaded in _stream(items, journal, runner.models, runner.formats, max(1, workers)):
        read_seconds += loaded.seconds
        if loaded.resumed:
            summary.resumed += 1
            bar.update(1)
            continue
        if not _is_2d(loaded.image):
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

    Raises:
        MedlabelError: the input does not exist, an unknown output format, model or engine,
            or an output folder that is the input itself.
    """
    start = time.perf_counter()
    src, target = Path(source), Path(out)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise MedlabelError(None, f"unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if engine not in ("local", "ray"):
        raise MedlabelError(None, f"unknown engine {engine!r}; choose local or ray")
    if target.resolve() == src.resolve():
        raise MedlabelError(target, "the output folder must not be the input folder")
    specs = _specs(models)
    chosen = [open_model(name, explicit=explicit) for name, explicit in specs]
    found = discover(src, exclude=target)
    target.mkdir(parents=True, exist_ok=True)
    journal = Journal(target)
    runner = _Runner(target, chosen, formats, tta)
    summary = JobSummary(out=target, items=len(found.items), ignored_files=found.ignored)
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
