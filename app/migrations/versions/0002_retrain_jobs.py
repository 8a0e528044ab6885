"""Create the retrain job table (durable jobs that workers claim under a lease).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retrain_jobs",
        # BIGINT on Postgres; plain INTEGER on SQLite so it is the rowid alias and auto-increments.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("data", sa.String(16), nullable=False),
        sa.Column("promote", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=True, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(256), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("result_version", sa.String(32), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The claim query: oldest claimable job first.
    op.create_index("ix_retrain_jobs_status_created_at", "retrain_jobs", ["status", "created_at"])
    # The periodic scheduler: newest job of a model.
    op.create_index("ix_retrain_jobs_model_created_at", "retrain_jobs", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_retrain_jobs_model_created_at", table_name="retrain_jobs")
    op.drop_index("ix_retrain_jobs_status_created_at", table_name="retrain_jobs")
    op.drop_table("retrain_jobs")
