"""The annotation store: items, predictions, human annotations, review states, audit.

:func:`open_store` opens (and migrates to the newest schema with Alembic) a SQLite file inside
the annotation output folder by default, or any SQLAlchemy URL (``postgresql://...``) for
teams. :meth:`Store.import_job` loads the results of ``medlabel annotate`` (idempotent: a
rerun of the job updates predictions, never touches human work); the review methods record
what people decide, each with an audit entry.

Example:
    >>> import tempfile
    >>> store = open_store(f"sqlite:///{tempfile.mkdtemp()}/review.db")
    >>> store.add_user("ana", "reviewer", "correct horse battery")
    >>> store.check_password("ana", "correct horse battery"), store.check_password("ana", "x")
    (True, False)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from medlabel.annotate.items import Item as JobItem
from medlabel.errors import MedlabelError, StoreError
from medlabel.review.schema import (
    REVIEW_STATES,
    Annotation,
    Audit,
    Item,
    Prediction,
    Review,
)
from medlabel.review.users import UserAccounts

__all__ = ["Store", "StoreError", "default_url", "job_manifest", "open_store", "source_item"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def source_item(item: dict[str, Any]) -> JobItem:
    """The annotation-job item behind a stored item (from :meth:`Store.item`), to read its
    image with :func:`medlabel.annotate.items.read_item`."""
    files = item["files"]
    return JobItem(
        id=item["id"],
        source=item["source"],
        kind=files.get("kind", "file"),
        files=tuple(files.get("paths") or []),
        series_uid=files.get("series_uid", ""),
    )


def job_manifest(folder: str | os.PathLike[str]) -> Path:
    """The ``manifest.jsonl`` of the annotation job in ``folder`` (nothing is created).

    Raises:
        StoreError: the folder does not exist or holds no ``manifest.jsonl``.
    """
    manifest = Path(folder) / "manifest.jsonl"
    if not manifest.is_file():
        raise StoreError(folder, "no manifest.jsonl here: run medlabel annotate first")
    return manifest


def default_url(folder: str | os.PathLike[str]) -> str:
    """``sqlite:///FOLDER/.medlabel/review.db`` (the folder of a ``medlabel annotate`` job)."""
    path = Path(folder).resolve() / ".medlabel" / "review.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _create_private(url: str) -> None:
    """Create the file of a SQLite URL readable by its owner only (it holds password hashes)
    before SQLite creates it with the default mode; existing files are left as they are."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:") or parsed.query.get("uri"):
        return  # SQLite URI filenames: leave them to SQLite
    path = Path(database)
    if path.exists() or not path.parent.is_dir():
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _migrate(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _aware(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC with its time zone (SQLite gives stored times back without it)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _newest(s: Session, item_id: str, model: str) -> Annotation | None:
    """The newest human annotation of an (item, model) pair."""
    return s.scalar(
        select(Annotation)
        .where(Annotation.item_id == item_id, Annotation.model == model)
        .order_by(Annotation.version.desc())
    )


def _next_version(s: Session, item_id: str, model: str) -> int:
    """The next annotation version number of an (item, model) pair."""
    latest = s.scalar(
        select(func.max(Annotation.version)).where(
            Annotation.item_id == item_id, Annotation.model == model
        )
    )
    return int(latest or 0) + 1


@dataclass
class Store(UserAccounts):
    """A migrated database behind a session factory (user accounts: :class:`UserAccounts`)."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s, s.begin():
            yield s

    # ----------------------------------------------------------------- import
    def import_job(self, folder: str | os.PathLike[str], user: str = "medlabel") -> dict[str, int]:
        """Load ``folder/manifest.jsonl`` of an annotation job: items, predictions (updated
        when the model version changes), and a pending review per (item, model) result.

        An item imported before keeps its id and source; its files, thumbnail and modality
        follow the manifest (a rerun of ``medlabel annotate`` repairs them). Human annotations
        and decided reviews are never touched. Returns counts.

        Raises:
            StoreError: the folder holds no ``manifest.jsonl``.
        """
        manifest = job_manifest(folder)
        counts = {"items": 0, "predictions": 0, "reviews": 0}
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        with self.session() as s:
            for row in rows:
                if row.get("status") != "done":
                    continue
                item = s.get(Item, row["item"])
                files = {
                    "job": str(Path(folder).resolve()),
                    "kind": row.get("kind", "file"),
                    "paths": row.get("files", []),
                    "series_uid": row.get("series_uid", ""),
                }
                modality, thumbnail = row.get("modality") or "", row.get("thumbnail") or ""
                if item is None:
                    item = Item(
                        id=row["item"],
                        source=row.get("source", ""),
                        modality=modality,
                        files=files,
                        thumbnail=thumbnail,
                    )
                    s.add(item)
                    counts["items"] += 1
                else:  # where the files are is no human work: follow the newest run
                    if dict(item.files or {}) != files:
                        item.files = files
                    if item.thumbnail != thumbnail:
                        item.thumbnail = thumbnail
                    if item.modality != modality:
                        item.modality = modality
                pred = s.scalar(
                    select(Prediction).where(
                        Prediction.item_id == row["item"], Prediction.model == row["model"]
                    )
                )
                values = {
                    "model_id": row["model_id"],
                    "task": row.get("task", ""),
                    "label": row.get("label") or "",
                    "confidence": row.get("confidence"),
                    "uncertainty": row.get("uncertainty"),
                    "margin": row.get("margin"),
                    "probs": {k[2:]: v for k, v in row.items() if k.startswith("p_")},
                    "mask": row.get("mask") or "",
                    "ood": bool(row.get("ood")),
                    "notes": [str(n) for n in row.get("notes") or []],
                }
                if pred is None:
                    s.add(Prediction(item_id=row["item"], model=row["model"], **values))
                    counts["predictions"] += 1
                elif pred.model_id != row["model_id"]:
                    for key, value in values.items():
                        setattr(pred, key, value)
                    # a new model's prediction: reviews of the earlier one predate it
                    pred.created = dt.datetime.now(dt.timezone.utc)
                    counts["predictions"] += 1
                elif (pred.ood, pred.notes or []) != (values["ood"], values["notes"]):
                    # the same result, imported before the store kept these: fill them in
                    pred.ood, pred.notes = values["ood"], values["notes"]
                review = s.scalar(
                    select(Review).where(
                        Review.item_id == row["item"], Review.model == row["model"]
                    )
                )
                if review is None:
                    s.add(Review(item_id=row["item"], model=row["model"], status="pending"))
                    counts["reviews"] += 1
            s.add(Audit(user=user, action="import", detail={"folder": str(folder), **counts}))
        return counts

    # ----------------------------------------------------------------- review
    def _prediction(self, s: Session, item_id: str, model: str) -> Prediction:
        pred = s.scalar(
            select(Prediction).where(Prediction.item_id == item_id, Prediction.model == model)
        )
        if pred is None:
            raise StoreError(None, f"no prediction of model {model!r} for item {item_id!r}")
        return pred

    def decide(
        self,
        item_id: str,
        model: str,
        status: str,
        user: str,
        *,
        label: str | None = None,
        mask: str | None = None,
    ) -> str:
        """Record a review decision: ``accepted`` (the prediction is right), ``corrected``
        (with the right ``label`` and/or a new ``mask`` file), ``rejected`` (unusable), or
        back to ``pending``. Every decision is audited. Returns the state recorded:

        * accepting stores the prediction as a human annotation (a new version), unless the
          newest annotation differs from the prediction and was made since the prediction
          (a person's correction of it): that annotation is kept as it is and the state is
          ``corrected``, since the result is not the model's. An annotation made before a
          new model's prediction was imported does not count: accepting the new prediction
          stores it;
        * correcting stores a new annotation version; a correction to exactly what the model
          gave is recorded as ``accepted``.

        Raises:
            StoreError: unknown state, no such prediction, a viewer, a correction without
                a label or mask, or a label that is none of the classifier's classes.
        """
        if status not in REVIEW_STATES:
            raise StoreError(None, f"status must be one of {', '.join(REVIEW_STATES)}")
        if self.role(user) not in ("admin", "reviewer"):
            raise StoreError(None, f"user {user!r} may not review (needs reviewer or admin)")
        if status == "corrected" and not (label or mask):
            raise StoreError(None, "a correction needs a label or a mask")
        with self.session() as s:
            pred = self._prediction(s, item_id, model)
            classes = sorted(pred.probs or {}) if pred.task == "classification" else []
            if status == "corrected" and label and classes and label not in classes:
                raise StoreError(
                    None,
                    f"label {label!r} is not a class of model {model!r}; "
                    f"choose one of {', '.join(classes)}",
                )
            new_label = pred.label if label is None else label
            new_mask = pred.mask if mask is None else mask
            detail: dict[str, Any] = {"model": model, "label": label, "mask": mask}
            if status == "corrected" and (new_label, new_mask) == (pred.label, pred.mask):
                status, detail["requested"] = "accepted", "corrected"
            elif status == "accepted":
                latest = _newest(s, item_id, model)
                if (  # a person's correction of this prediction is kept; one of an older
                    latest is not None  # model's prediction is not what is being accepted
                    and (latest.label, latest.mask) != (pred.label, pred.mask)
                    and _aware(latest.created) >= _aware(pred.created)
                ):
                    status, detail["kept"] = "corrected", latest.version
            review = s.scalar(
                select(Review).where(Review.item_id == item_id, Review.model == model)
            )
            if review is None:
                review = Review(item_id=item_id, model=model)
                s.add(review)
            detail["before"] = review.status
            review.status, review.reviewer = status, user
            review.updated = dt.datetime.now(dt.timezone.utc)
            if status in ("accepted", "corrected") and "kept" not in detail:
                s.add(
                    Annotation(
                        item_id=item_id,
                        model=model,
                        label=new_label,
                        mask=new_mask,
                        version=_next_version(s, item_id, model),
                        author=user,
                        prediction_id=pred.id,
                    )
                )
            action = "review:accepted" if "kept" in detail else f"review:{status}"
            s.add(Audit(user=user, action=action, item_id=item_id, detail=detail))
        return status

    def add_item(self, item_id: str, source: str, paths: list[str], user: str) -> None:
        """Register an image that did not come from an annotation job (an upload)."""
        with self.session() as s:
            item = s.get(Item, item_id)
            files = {"kind": "file", "paths": list(paths), "series_uid": ""}
            if item is None:
                s.add(Item(id=item_id, source=source, modality="", files=files, thumbnail=""))
            else:
                item.files, item.source = files, source
            s.add(
                Audit(user=user, action="upload:image", item_id=item_id, detail={"source": source})
            )

    def add_label(self, item_id: str, model: str, mask: str, user: str) -> int:
        """Store a human mask for an item (a new version, with or without a prediction) and
        mark the (item, model) pair corrected. Returns the version.

        Raises:
            StoreError: unknown item.
        """
        with self.session() as s:
            if s.get(Item, item_id) is None:
                raise StoreError(None, f"no item {item_id!r}")
            pred = s.scalar(
                select(Prediction).where(Prediction.item_id == item_id, Prediction.model == model)
            )
            version = _next_version(s, item_id, model)
            s.add(
                Annotation(
                    item_id=item_id,
                    model=model,
                    label="",
                    mask=mask,
                    version=version,
                    author=user,
                    prediction_id=pred.id if pred else None,
                )
            )
            review = s.scalar(
                select(Review).where(Review.item_id == item_id, Review.model == model)
            )
            if review is None:
                s.add(Review(item_id=item_id, model=model, status="corrected", reviewer=user))
            else:
                review.status, review.reviewer = "corrected", user
            s.add(
                Audit(
                    user=user,
                    action="upload:label",
                    item_id=item_id,
                    detail={"model": model, "mask": mask, "version": version},
                )
            )
            return version

    def log(self, user: str, action: str, detail: dict[str, Any], item_id: str = "") -> None:
        """Add an audit entry."""
        with self.session() as s:
            s.add(Audit(user=user, action=action, item_id=item_id, detail=detail))

    def items(self) -> list[dict[str, Any]]:
        """Every item with whether it is labelled: a result of it (any model) is accepted or
        corrected now (an item set back to pending is not)."""
        with self.session() as s:
            labelled = set(
                s.scalars(
                    select(Review.item_id).where(Review.status.in_(("accepted", "corrected")))
                ).all()
            )
            return [
                {"id": i.id, "source": i.source, "labelled": i.id in labelled}
                for i in s.scalars(select(Item).order_by(Item.id)).all()
            ]

    def latest_annotation(self, item_id: str, model: str) -> dict[str, Any] | None:
        """The newest human annotation of an (item, model) pair."""
        with self.session() as s:
            a = _newest(s, item_id, model)
            if a is None:
                return None
            return {
                "label": a.label,
                "mask": a.mask,
                "version": a.version,
                "author": a.author,
                "prediction_id": a.prediction_id,
            }

    def progress(self) -> dict[str, Any]:
        """Counts per review state of the (item, model) results, their ``total``, the number
        of ``items``, and how often reviewers agreed with the model
        (accepted / (accepted + corrected))."""
        with self.session() as s:
            counts = dict(
                s.execute(select(Review.status, func.count()).group_by(Review.status)).all()
            )
            items = s.scalar(select(func.count()).select_from(Item))
        out: dict[str, Any] = {k: int(counts.get(k, 0)) for k in REVIEW_STATES}
        decided = out["accepted"] + out["corrected"]
        out["total"] = sum(out[k] for k in REVIEW_STATES)
        out["items"] = int(items or 0)
        out["agreement"] = out["accepted"] / decided if decided else None
        return out

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit entries first."""
        with self.session() as s:
            rows = s.scalars(select(Audit).order_by(Audit.id.desc()).limit(limit)).all()
            return [
                {
                    "at": r.at.isoformat() if r.at else None,
                    "user": r.user,
                    "action": r.action,
                    "item": r.item_id,
                    "detail": r.detail,
                }
                for r in rows
            ]

    def item(self, item_id: str) -> dict[str, Any] | None:
        """An item with its predictions, review states and newest annotations."""
        with self.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                return None
            preds = s.scalars(select(Prediction).where(Prediction.item_id == item_id)).all()
            reviews = {
                r.model: r for r in s.scalars(select(Review).where(Review.item_id == item_id)).all()
            }
            results: list[dict[str, Any]] = []
            out: dict[str, Any] = {
                "id": item.id,
                "source": item.source,
                "modality": item.modality,
                "files": dict(item.files or {}),
                "thumbnail": item.thumbnail,
                "results": results,
            }
        for p in preds:
            review = reviews.get(p.model)
            results.append(
                {
                    "model": p.model,
                    "model_id": p.model_id,
                    "task": p.task,
                    "label": p.label,
                    "confidence": p.confidence,
                    "uncertainty": p.uncertainty,
                    "probs": dict(p.probs or {}),
                    "mask": p.mask,
                    "ood": bool(p.ood),
                    "notes": list(p.notes or []),
                    "status": review.status if review else "pending",
                    "reviewer": review.reviewer if review else "",
                    "annotation": self.latest_annotation(item_id, p.model),
                }
            )
        return out

    def predictions(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Predictions with their review state (optionally only those in ``status``)."""
        with self.session() as s:
            query = (
                select(Prediction, Review, Item)
                .join(
                    Review,
                    (Review.item_id == Prediction.item_id) & (Review.model == Prediction.model),
                )
                .join(Item, Item.id == Prediction.item_id)
            )
            if status is not None:
                query = query.where(Review.status == status)
            out = []
            for pred, review, item in s.execute(query.order_by(Prediction.id)).all():
                out.append(
                    {
                        "item": pred.item_id,
                        "source": item.source,
                        "modality": item.modality,
                        "thumbnail": item.thumbnail,
                        "model": pred.model,
                        "task": pred.task,
                        "label": pred.label,
                        "confidence": pred.confidence,
                        "uncertainty": pred.uncertainty,
                        "margin": pred.margin,
                        "probs": dict(pred.probs or {}),
                        "ood": bool(pred.ood),
                        "notes": list(pred.notes or []),
                        "status": review.status,
                    }
                )
            return out


def open_store(url_or_folder: str | os.PathLike[str]) -> Store:
    """Open a store by SQLAlchemy URL, or the default SQLite file of a job folder, and bring
    its schema up to date.

    Raises:
        StoreError: the database cannot be opened or migrated.
    """
    text = str(url_or_folder)
    url = text if "://" in text else default_url(text)
    try:
        _create_private(url)
        engine = create_engine(url, future=True)
        if url.startswith("sqlite"):

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.close()

        _migrate(engine)
    except Exception as exc:
        if isinstance(exc, MedlabelError):
            raise
        raise StoreError(None, f"cannot open the store at {url}: {exc}") from exc
    return Store(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
