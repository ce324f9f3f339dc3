"""The engine-independent work of an annotation job: read items, run models, write masks.

:class:`Runner` applies every model to a batch of read items and writes their output files,
returning one manifest row per (item, model). The local engine (:mod:`medlabel.annotate.job`)
and the Ray engine (:mod:`medlabel.annotate.ray_engine`) both drive it.

Example:
    >>> import tempfile, pathlib
    >>> from medlabel.annotate.items import discover
    >>> from medlabel.annotate.manifest import Journal
    >>> from medlabel.annotate.models import open_model
    >>> from medlabel.io import write_image
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(chest_phantom()[0], root / "in" / "chest.nii.gz")
    >>> runner = Runner(root / "out", [open_model("ct-lungs")], ("nifti",), tta=False)
    >>> items = discover(root / "in").items
    >>> loaded = [load_item(i, Journal(root / "out"), runner.models, runner.formats) for i in items]
    >>> rows = runner.process(loaded)
    >>> [(r["status"], r["label"], (root / "out" / r["mask"]).is_file()) for r in rows]
    [('done', 'lung_right|lung_left', True)]
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medlabel.annotate.items import Item, content_hash, read_item
from medlabel.annotate.manifest import Journal
from medlabel.annotate.models import SIZE_KEYS, AnnotationModel, Segmentation, effective_modality
from medlabel.annotate.outputs import (
    coco_annotations,
    output_path,
    write_dicom_seg,
    write_json,
    write_nifti,
    write_overlay,
)
from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage

__all__ = ["LoadedItem", "Runner", "failure_reason", "is_2d", "load_item", "stream_items"]

log = logging.getLogger(__name__)


@dataclass
class LoadedItem:
    """An item read for the runner: its image, or why it could not be read."""

    item: Item
    hash: str
    image: MedicalImage | None = None
    error: str = ""
    resumed: bool = False  # every model's result is already in the journal
    seconds: float = 0.0
    modality: str = ""  # effective modality, worked out once per item


def failure_reason(exc: BaseException) -> str:
    """One line for the manifest: a MedlabelError as is, anything else with its type."""
    if isinstance(exc, MedlabelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Runner:
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

    def _base(self, loaded: LoadedItem, model: AnnotationModel) -> dict[str, Any]:
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

    def thumbnail(self, loaded: LoadedItem) -> str:
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

    def process(self, batch: list[LoadedItem]) -> list[dict[str, Any]]:
        """Rows for every (item, model) pair of ``batch`` (items already read)."""
        rows: list[dict[str, Any]] = []
        thumbs = {b.item.id: self.thumbnail(b) for b in batch}
        for model in self.models:
            todo: list[LoadedItem] = []
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
        self, model: AnnotationModel, todo: list[LoadedItem], thumbs: dict[str, str]
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
                    errors.append(failure_reason(exc))
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
        self, model: AnnotationModel, todo: list[LoadedItem], thumbs: dict[str, str]
    ) -> list[dict[str, Any]]:
        """Segment 2D items as one batch (volumes one at a time); outputs per item."""
        if len(todo) > 1 and all(is_2d(b.image) for b in todo):
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
        b: LoadedItem,
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
            row[SIZE_KEYS[seg.unit]] = seg.sizes
            row["outputs"], notes = self._write_mask(b, model, seg.mask, seg.classes)
            row["mask"] = row["outputs"].get("nifti", next(iter(row["outputs"].values()), ""))
            if notes:
                row["notes"] = [*row.get("notes", []), *notes]
        except Exception as exc:
            row.update(status="failed", error=failure_reason(exc), outputs={})
        row["seconds"] = seconds + time.perf_counter() - start
        self.timing[model.name] = self.timing.get(model.name, 0.0) + row["seconds"]
        return row

    def _write_mask(
        self, b: LoadedItem, model: AnnotationModel, mask: MedicalImage, classes: dict[int, str]
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
                seg_notes: list[str] = []  # written, but with something to say (new UIDs)
                why = write_dicom_seg(
                    mask,
                    classes,
                    files,
                    self.out / rel["dicom-seg"],
                    model_name=model.name,
                    model_version=model.version,
                    notes=seg_notes,
                )
                notes.extend(f"dicom-seg: {n}" for n in seg_notes)
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


def _finished_as_named_before(
    item: Item, journal: Journal, models: Sequence[AnnotationModel], formats: Sequence[str]
) -> bool:
    """Whether an earlier run finished ``item`` naming the same files by relative paths (as
    earlier medlabel versions recorded them): the content decides, not the spelling."""
    old = journal.recorded_files(item.id)
    if not old or tuple(old) == item.files or len(old) != len(item.files):
        return False
    if any(Path(o).absolute() != Path(n) for o, n in zip(old, item.files, strict=True)):
        return False
    legacy = content_hash(replace(item, files=tuple(old)))
    return all(journal.finished(item.id, m.id, legacy, formats) is not None for m in models)


def load_item(
    item: Item, journal: Journal, models: Sequence[AnnotationModel], formats: Sequence[str]
) -> LoadedItem:
    """Read ``item`` unless the journal holds every model's result for its content already."""
    start = time.perf_counter()
    digest = content_hash(item)
    earlier = [journal.finished(item.id, m.id, digest, formats) for m in models]
    if all(r is not None for r in earlier) or _finished_as_named_before(
        item, journal, models, formats
    ):
        return LoadedItem(item, digest, resumed=True)
    try:
        image = read_item(item)
        return LoadedItem(
            item,
            digest,
            image=image,
            seconds=time.perf_counter() - start,
            modality=effective_modality(image),
        )
    except Exception as exc:
        return LoadedItem(
            item, digest, error=failure_reason(exc), seconds=time.perf_counter() - start
        )


def stream_items(
    items: Iterable[Item],
    journal: Journal,
    models: Sequence[AnnotationModel],
    formats: Sequence[str],
    workers: int,
) -> Iterator[LoadedItem]:
    """Items read in order by ``workers`` threads, at most ``2 * workers`` ahead."""
    ahead = max(1, 2 * workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queue: deque[Future[LoadedItem]] = deque()
        iterator = iter(items)
        for item in iterator:
            queue.append(pool.submit(load_item, item, journal, models, formats))
            if len(queue) >= ahead:
                break
        while queue:
            done = queue.popleft().result()
            nxt = next(iterator, None)
            if nxt is not None:
                queue.append(pool.submit(load_item, nxt, journal, models, formats))
            yield done


def is_2d(image: MedicalImage | None) -> bool:
    """Whether an item's image is a 2D picture (or a volume one slice thick)."""
    return image is not None and (image.ndim == 2 or image.array.shape[0] == 1)
