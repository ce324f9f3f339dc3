"""Evaluating a segmenter (bundle or recipe) on a segmentation data set, with its report.

Which cases: the ``test`` split when the data has one; otherwise, when some case ids are
among those the bundle recorded as trained on, every other case; otherwise, for an older
bundle trained on this same data, its recorded validation cases; otherwise every case, with a
note in ``metrics.json`` that their relation to training is unknown (a recipe, which has no
training data, is scored on every case without that note). Cases that trained the
bundle and are evaluated anyway (a split asked for by name) are counted in ``trained_on``,
and the report warns. Cases the data set skipped as unusable when it was opened (unreadable,
a mask off the image's grid...) are listed under ``skipped`` in ``metrics.json`` and noted in
the report; a case that fails later is listed under ``failures``.

Example:
    >>> from medlabel.segment.evaluation import choose_cases
    >>> choose_cases.__name__
    'choose_cases'
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medlabel.errors import MedlabelError
from medlabel.evaluate.segmentation import case_metrics, summarize_cases
from medlabel.evaluate.segreport import write_segmentation_report
from medlabel.image import MedicalImage
from medlabel.models.files import SampleIds, trained_ids, was_seen
from medlabel.segment.api import Segmenter
from medlabel.segment.dataset import SegmentationDataset
from medlabel.visualize.preview import render_preview

__all__ = ["choose_cases", "evaluate_segmenter"]

log = logging.getLogger(__name__)


def _trained_on(segmenter: Segmenter) -> SampleIds:
    """Ids of the cases a bundle trained on (empty for recipes and bundles that did not record
    them)."""
    return SampleIds() if segmenter.bundle is None else trained_ids(segmenter.bundle.meta)


def choose_cases(
    ds: SegmentationDataset, segmenter: Segmenter, split: str | None
) -> tuple[list[int], str]:
    """Indices to evaluate and a note saying why these."""
    if split == "all":
        return list(range(len(ds.cases))), "all cases (requested)"
    if split:
        idx = ds.indices(split)
        if not idx:
            raise MedlabelError(ds.source.get("path"), f"the data set has no {split!r} cases")
        return idx, f"the {split} split"
    if ds.indices("test"):
        return ds.indices("test"), "the test split"
    seen = _trained_on(segmenter)
    trained = [was_seen(seen, c.id, c.image) for c in ds.cases]
    if any(trained):
        idx = [i for i, hit in enumerate(trained) if not hit]
        if idx:
            return idx, (
                f"the {len(idx)} of {len(ds.cases)} cases the bundle never trained on "
                "(matched by case id and file content)"
            )
    trained_on = segmenter.training_data()
    if (
        trained_on
        and Path(str(trained_on.get("path"))).resolve()
        == Path(str(ds.source.get("path"))).resolve()
    ):
        wanted = set(trained_on.get("val_ids", []))
        idx = [i for i, c in enumerate(ds.cases) if c.id in wanted]
        if idx:
            return idx, "the bundle's validation cases (held out from its training)"
    if segmenter.bundle is None:
        return list(range(len(ds.cases))), "all cases (a recipe has no training data)"
    return list(range(len(ds.cases))), (
        "all cases; their relation to the model's training data is unknown"
    )


def evaluate_segmenter(
    segmenter: Segmenter,
    ds: SegmentationDataset,
    out_dir: str | os.PathLike[str],
    *,
    split: str | None = None,
    tta: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Segment the chosen cases, compare with their masks, write metrics.json and report.html.

    Raises:
        MedlabelError: no usable cases, or the model's classes do not cover the data's.
    """
    indices, note = choose_cases(ds, segmenter, split)
    classes = ds.classes
    model_classes = segmenter.classes
    by_name = {name: k for k, name in model_classes.items()}
    # data that names no classes (label_1, label_2, ...) is matched by value
    by_value = {
        f"label_{k}": name
        for k, name in model_classes.items()
        if f"label_{k}" in classes.values() and f"label_{k}" not in by_name
    }
    if by_value:
        log.info("unnamed data classes matched to the model's by value: %s", by_value)
        classes = {k: by_value.get(name, name) for k, name in classes.items()}
    missing = [n for n in classes.values() if n not in by_name]
    if missing:
        raise MedlabelError(
            ds.source.get("path"),
            f"the data's classes {missing} are not among the model's "
            f"({', '.join(model_classes.values())})",
        )
    cases: dict[str, Any] = {}
    keep: dict[str, tuple[MedicalImage, MedicalImage, MedicalImage]] = {}
    failures: list[dict[str, str]] = []
    coarse: dict[str, str] = {}  # evaluated cases coarser than every training image, and why
    seconds = []
    for i in tqdm(indices, desc="evaluate", disable=None if progress else True):
        cid = ds.cases[i].id
        try:
            image, truth = ds.load(i)
            assert truth is not None
            why = None if segmenter.bundle is None else segmenter.bundle.coarser(image)
            start = time.perf_counter()
            pred = segmenter.segment(image, tta=tta)
            seconds.append(time.perf_counter() - start)
        except MedlabelError as err:
            failures.append({"case": cid, "error": str(err)})
            log.warning("%s", err)
            continue
        # bring the prediction onto the data's class indices (by class name)
        lut = np.zeros(max(model_classes) + 1, np.uint8)
        for k, name in classes.items():
            lut[by_name[name]] = k
        mapped = pred.with_array(lut[pred.array], metadata={"labels": classes})
        cases[cid] = case_metrics(mapped, truth, classes)
        if why:
            coarse[cid] = why
        keep[cid] = (image, mapped, truth)
    if not cases:
        raise MedlabelError(
            ds.source.get("path"),
            f"no case could be evaluated ({failures[:3]}){ds.skipped_note()}",
        )
    # cases the data set skipped as unusable when it was opened (listed with their reasons)
    skipped = ds.source.get("skipped") or {"count": 0, "cases": []}

    def overlays(cid: str) -> Any:
        image, pred, truth = keep[cid]
        return (
            render_preview(image, mask=pred, slices=4, tile=180),
            render_preview(image, mask=truth, slices=4, tile=180),
        )

    summary = summarize_cases(cases)
    bundle = segmenter.bundle
    # what computed the figures: bfloat16 and float32 masks differ at a few boundary voxels
    inference = "recipe" if bundle is None else bundle.arithmetic
    seen = _trained_on(segmenter)
    image_of = {c.id: c.image for c in ds.cases}
    trained_on = sum(1 for cid in cases if was_seen(seen, cid, image_of.get(cid)))
    extra = {
        "model": segmenter.name,
        "cases_evaluated": note,
        "trained_on": trained_on,
        "classes_by_value": by_value,
        "failures": failures,
        "skipped": skipped,
        "seconds_per_case": float(np.median(seconds)) if seconds else None,
        "tta": tta,
        "inference": inference,
        "low_resolution": {"count": len(coarse), "cases": coarse},
    }
    write_segmentation_report(
        out_dir,
        cases=cases,
        title=f"Segmentation: {segmenter.name} on {ds.name}",
        model_info={
            "model": segmenter.name,
            "data": str(ds.source.get("path")),
            "cases evaluated": note,
            "test-time augmentation": tta,
            "inference": inference,
            **(
                {
                    "warning": f"{trained_on} of these cases trained this model: the figures "
                    "flatter it; evaluate on cases it never saw"
                }
                if trained_on
                else {}
            ),
            **(
                {
                    "skipped": f"{skipped['count']} case(s) of the data set could not be used "
                    "(unreadable, or a mask off the image's grid or with undeclared values); "
                    "metrics.json names them"
                }
                if skipped["count"]
                else {}
            ),
            **(
                {
                    "low resolution": f"{len(coarse)} of these cases are coarser than every image "
                    "the model trained on, so it saw them interpolated (metrics.json names "
                    "them)"
                }
                if coarse
                else {}
            ),
        },
        overlays=overlays,
        extra=extra,
    )
    return {"summary": summary, "n": len(cases), **extra}
