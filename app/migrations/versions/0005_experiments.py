"""A/B experiments, and the serving latency of each impression.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Additive only, so replicas still running the previous code keep working.

* ``experiments``: one row per experiment (``name`` is its key); ``variants`` as
  a JSON list of ``{name, model, version, weight}``; ``running`` is true while it
  runs and NULL once stopped, under a unique constraint, so the database itself
  keeps at most one experiment running (NULLs never collide, on Postgres and
  SQLite alike).
* ``impressions.latency_ms``: the server-side time to produce the list, for the
  per-variant p50/p99 of the results; nullable (older rows have none).
* ``ix_impressions_experiment_variant``: the results read one experiment's
  impressions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("running", sa.Boolean(), nullable=True, unique=True),
        sa.Column("control", sa.String(128), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("window_minutes", sa.Float(), nullable=False),
        sa.Column("mixing_sd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("impressions") as batch:
        batch.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
    op.create_index("ix_impressions_experiment_variant", "impressions", ["experiment", "variant"])


def downgrade() -> None:
    op.drop_index("ix_impressions_experiment_variant", table_name="impressions")
    with op.batch_alter_table("impressions") as batch:
        batch.drop_column("latency_ms")
    op.drop_table("experiments")
