"""Reviewed annotations as training data: the bridge from review back to training.

:func:`export_reviewed` writes the accepted and corrected results of one model as a CSV that
the dataset readers take: ``path,label`` for a classifier (the human label), or
``image,label`` pairs for a segmenter (the newest human mask version, or the accepted
prediction's mask). Rejected and pending results are left out.

Example:
    >>> import tempfile, pathlib
    >>> from medlabel.annotate.job import annotate
    >>> from medlabel.io import write_image
    >>> from medlabel.review.store import open_store
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(chest_phantom()[0], root / "in" / "chest.nii.gz")
    >>> _ = annotate(root / "in", root / "out", models=["ct-lungs"], progress=False)
    >>> store = open_store(root / "out"); store.import_job(root / "out")["items"]
    1
    >>> store.add_user("ana", "reviewer", "long enough pw")
    >>> item = store.predictions()[0]["item"]
    >>> store.decide(item, "ct-lungs", "accepted", "ana")
    'accepted'
    >>> e = export_reviewed(root / "out", "ct-lungs")
    >>> e.task, e.rows, e.labels
    ('segmentation', 1, '1=lung_right,2=lung_left')
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from medlabel.annotate.models import SIZE_KEYS
from medlabel.io.atomic import atomic_output
from medlabel.review.store import StoreError, job_manifest, open_store, source_item

__all__ = ["Export", "export_reviewed", "model_classes"]


@dataclass
class Export:
    """What :func:`export_reviewed` wrote."""

    path: Path
    task: str
    rows: int
    skipped: int
    labels: str = ""  # segmentation: the value mapping for --labels


def model_classes(job: str | os.PathLike[str]) -> dict[str, dict[int, str]]:
    """Class value -> name of each segmentation model of a job, from its manifest."""
    out: dict[str, dict[int, str]] = {}
    manifest = Path(job) / "manifest.jsonl"
    if not manifest.is_file():
        return out
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        sizes = next((row[k] for k in SIZE_KEYS.values() if row.get(k)), None)
        if sizes and row["model"] not in out:
            out[row["model"]] = {k + 1: str(name) for k, name in enumerate(sizes)}
    return out


def export_reviewed(
    job: str | os.PathLike[str],
    model: str,
    out: str | os.PathLike[str] | None = None,
    *,
    db: str | None = None,
) -> Export:
    """Write the reviewed results of ``model`` as a training CSV (default:
    ``JOB/.medlabel/reviewed-<model>.csv``).

    Raises:
        StoreError: no annotation job in ``job``, or no accepted or corrected result of that
            model.
    """
    folder = Path(job).resolve()
    if db is None:
        job_manifest(folder)  # no store file in a folder that holds no job
    store = open_store(db or folder)
    store.import_job(folder)
    rows = [r for r in store.predictions(None) if r["model"] == model]
    reviewed = [r for r in rows if r["status"] in ("accepted", "corrected")]
    if not reviewed:
        raise StoreError(folder, f"no accepted or corrected results of model {model!r} yet")
    task = reviewed[0]["task"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"] if task == "classification" else ["image", "label"])
    written = skipped = 0
    for r in reviewed:
        item = store.item(r["item"])
        ann = store.latest_annotation(r["item"], model)
        if item is None or ann is None:
            skipped += 1
            continue
        job_item = source_item(item)
        if not job_item.files:
            skipped += 1
            continue
        first = job_item.files[0]
        source = str(Path(first).parent) if job_item.kind == "dicom-series" else first
        if task == "classification":
            writer.writerow([source, ann["label"]])
        else:
            if not ann["mask"]:
                skipped += 1
                continue
            writer.writerow([source, str(folder / ann["mask"])])
        written += 1
    target = Path(out) if out else folder / ".medlabel" / f"reviewed-{model}.csv"
    with atomic_output(target) as tmp:
        tmp.write_text(buf.getvalue())
    labels = ",".join(f"{v}={n}" for v, n in sorted(model_classes(folder).get(model, {}).items()))
    return Export(target, task, written, skipped, labels)
