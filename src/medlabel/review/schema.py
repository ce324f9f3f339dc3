"""Tables of the annotation store (SQLAlchemy 2 declarative models).

* ``items``: one row per annotated item (the ids of ``medlabel annotate``), with where its
  files are and its thumbnail.
* ``predictions``: what a model said about an item: model name and version, label,
  confidence, uncertainty, class probabilities, mask file.
* ``annotations``: what a person said: label and/or mask file, who, when, and which
  prediction it confirms or corrects. Mask corrections are new rows (versions), never edits.
* ``reviews``: the review state of an (item, model) pair: pending, accepted, corrected or
  rejected, by whom and when.
* ``users``: reviewers with a role (admin, reviewer, viewer), a password hash, and the time
  from which their sign-ins count (earlier sessions are revoked).
* ``audit``: every change, who made it and when.

The schema is created and upgraded by Alembic migrations (:mod:`medlabel.review.migrations`),
never by ``create_all``, so a store made by an older medlabel is upgraded in place.

Example:
    >>> sorted(Base.metadata.tables)
    ['annotations', 'audit', 'items', 'predictions', 'reviews', 'users']
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "REVIEW_STATES",
    "ROLES",
    "Annotation",
    "Audit",
    "Base",
    "Item",
    "Prediction",
    "Review",
    "User",
]

REVIEW_STATES = ("pending", "accepted", "corrected", "rejected")
ROLES = ("admin", "reviewer", "viewer")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class Item(Base):
    """An annotated item."""

    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    modality: Mapped[str] = mapped_column(String(16), default="")
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    thumbnail: Mapped[str] = mapped_column(Text, default="")
    added: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Prediction(Base):
    """A model's result for an item."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("item_id", "model_id", name="uq_prediction_item_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    model_id: Mapped[str] = mapped_column(String(240))
    task: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    uncertainty: Mapped[float | None] = mapped_column(Float, nullable=True)
    margin: Mapped[float | None] = mapped_column(Float, nullable=True)
    probs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mask: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    #: outside the model's training distribution (the job's ``ood``), and why (``notes``)
    ood: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)


class Annotation(Base):
    """A person's label and/or mask for an item (each correction is a new version)."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200), default="")
    label: Mapped[str] = mapped_column(Text, default="")
    mask: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    author: Mapped[str] = mapped_column(String(120))
    prediction_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL"), nullable=True
    )
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Review(Base):
    """Review state of an (item, model) pair."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("item_id", "model", name="uq_review_item_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    reviewer: Mapped[str] = mapped_column(String(120), default="")
    updated: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class User(Base):
    """A person who may log in."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    #: sessions (sign-ins) from before this time (epoch seconds) are no longer valid
    sessions_from: Mapped[float | None] = mapped_column(Float, nullable=True)


class Audit(Base):
    """One change: who, when, what."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, index=True)
    user: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    item_id: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
