"""What to review next in an annotation job folder: the store plus an active-learning strategy.

Example:
    >>> import tempfile, pathlib
    >>> from medlabel.annotate.job import annotate
    >>> from medlabel.io import write_image
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(chest_phantom()[0], root / "in" / "chest.nii.gz")
    >>> _ = annotate(root / "in", root / "out", models=["ct-lungs"], progress=False)
    >>> [r["model"] for r in next_items(root / "out", "uncertainty", 5)]
    ['ct-lungs']
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.review.active import rank
from medlabel.review.store import StoreError, job_manifest, open_store

__all__ = ["next_items", "rank_pending", "thumbnail_features"]


def thumbnail_features(job: Path, rel: str, side: int = 16) -> np.ndarray | None:
    """A ``side x side`` grey version of an item's thumbnail, scaled to 0..1."""
    if not rel or not (job / rel).is_file():
        return None
    from PIL import Image

    with Image.open(job / rel) as pic:
        grey = pic.convert("L").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(grey, np.float64).ravel() / 255.0


def rank_pending(
    job: Path, rows: list[dict[str, Any]], strategy: str, n: int, seed: int = 0
) -> list[dict[str, Any]]:
    """:func:`~medlabel.review.active.rank` with the items' thumbnails as the features of
    the diversity strategy (rows as :meth:`Store.predictions` gives them).

    Raises:
        ValueError: ``n`` is less than 1.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    return rank(
        rows,
        strategy,
        n,
        seed=seed,
        features=lambda r: thumbnail_features(job, r.get("thumbnail", "")),
    )


def next_items(
    folder: str | os.PathLike[str],
    strategy: str = "uncertainty",
    n: int = 20,
    *,
    model: str | None = None,
    seed: int = 0,
    db: str | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` pending results of the job in ``folder`` a person should review next.

    The job's manifest is imported into the store first (idempotent), so the answer always
    reflects the latest run. ``db`` is a SQLAlchemy URL (default: the folder's SQLite file,
    created only when the folder holds a job).

    Raises:
        ValueError: ``n`` is less than 1.
        StoreError: the folder holds no annotation job, or ``model`` is none of its models.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    job = Path(folder)
    if db is None:
        job_manifest(job)  # before the store file is created
    store = open_store(db or job)
    store.import_job(job)
    if model is not None:
        models = sorted({r["model"] for r in store.predictions(None)})
        if model not in models:
            raise StoreError(
                job,
                f"the job has no results of model {model!r}; "
                + (
                    f"its models: {', '.join(models)}"
                    if models
                    else "it has no results at all (every item failed, or no model applied)"
                ),
            )
    rows = store.predictions("pending")
    if model is not None:
        rows = [r for r in rows if r["model"] == model]
    return rank_pending(job, rows, strategy, n, seed)
