"""Impressions (what each recommendation response showed) and typed, attributed feedback.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Additive only, so replicas still running the previous code keep working: a
new table, and nullable columns on ``interactions`` that old code never writes.

* ``impressions``: one row per recommendation response (``id`` is the
  response's ``recommendation_id``), the items in order as a JSON array, the
  model and version, and the experiment and variant (nullable; filled once
  experiments exist). Index ``(user_id, created_at)``: a user's last N
  impressions (``exclude_recently_shown``) and retention's range scans.
  Attribution ("the latest impression that showed item I to user U within
  the window") is a range scan of that index, U's impressions in the window,
  with the item looked up in their ``items``: indexable on Postgres and SQLite
  alike, and one row per impression to write (a child table of item rows would
  be ten-odd index entries per response, on the serving machine's CPU).
* ``interactions.type`` (the event type, null = untyped as before),
  ``recommendation_id`` (as the client sent it) and ``impression_id`` (the
  impression the event is attributed to: the explicit id when it exists, else
  the window match; null when none).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "impressions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=True),
        sa.Column("variant", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_impressions_user_id_created_at", "impressions", ["user_id", "created_at"])
    op.create_index("ix_impressions_created_at", "impressions", ["created_at"])
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("type", sa.String(32), nullable=True))
        batch.add_column(sa.Column("recommendation_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("impression_id", sa.String(36), nullable=True))
    op.create_index("ix_interactions_impression_id", "interactions", ["impression_id"])


def downgrade() -> None:
    op.drop_index("ix_interactions_impression_id", table_name="interactions")
    with op.batch_alter_table("interactions") as batch:
        batch.drop_column("impression_id")
        batch.drop_column("recommendation_id")
        batch.drop_column("type")
    op.drop_index("ix_impressions_created_at", table_name="impressions")
    op.drop_index("ix_impressions_user_id_created_at", table_name="impressions")
    op.drop_table("impressions")
