"""Initial store: items, predictions, annotations, reviews, users, audit.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("thumbnail", sa.Text(), nullable=False),
        sa.Column("added", _TS, nullable=False),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "item_id", sa.String(200), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_id", sa.String(240), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("uncertainty", sa.Float(), nullable=True),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.Column("probs", sa.JSON(), nullable=False),
        sa.Column("mask", sa.Text(), nullable=False),
        sa.Column("created", _TS, nullable=False),
        sa.UniqueConstraint("item_id", "model_id", name="uq_prediction_item_model"),
    )
    op.create_index("ix_predictions_item_id", "predictions", ["item_id"])
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "item_id", sa.String(200), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("mask", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(120), nullable=False),
        sa.Column(
            "prediction_id",
            sa.Integer(),
            sa.ForeignKey("predictions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_index("ix_annotations_item_id", "annotations", ["item_id"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "item_id", sa.String(200), sa.ForeignKey("items.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(120), nullable=False),
        sa.Column("updated", _TS, nullable=False),
        sa.UniqueConstraint("item_id", "model", name="uq_review_item_model"),
    )
    op.create_index("ix_reviews_item_id", "reviews", ["item_id"])
    op.create_index("ix_reviews_status", "reviews", ["status"])
    op.create_table(
        "users",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created", _TS, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("user", sa.String(120), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])


def downgrade() -> None:
    for table in ("audit", "users", "reviews", "annotations", "predictions", "items"):
        op.drop_table(table)
