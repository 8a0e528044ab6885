"""Tune jobs: a job kind on ``retrain_jobs``, the search window and the result; Optuna's schema.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Additive only (replicas on the previous code keep working: they never read
the new columns, and every existing row is a retrain):

* ``kind``: ``retrain`` (server default, so old rows and old code's inserts
  are retrains) or ``tune`` (``POST /admin/tune``, ``app/tune``).
* ``search_until``: while a tune job's search runs, the moment it ends; other
  workers join the job's Optuna study until then (null: not searching).
* ``result``: what a finished job found (a tune job: the winner's model and
  version, the leaderboard, the tuning report).
* On Postgres, the schema ``optuna`` that holds the Optuna study tables
  (``studies``, ``trials``, ... and Optuna's own ``alembic_version``, which
  would clash with ours in the public schema). SQLite keeps them in a file
  of their own next to the database (``app/tune/study.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPTUNA_SCHEMA = "optuna"


def upgrade() -> None:
    with op.batch_alter_table("retrain_jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="retrain"))
        batch.add_column(sa.Column("search_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
    # Helpers look for a running tune job whose search is still open.
    op.create_index("ix_retrain_jobs_kind_status", "retrain_jobs", ["kind", "status"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'CREATE SCHEMA IF NOT EXISTS "{OPTUNA_SCHEMA}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f'DROP SCHEMA IF EXISTS "{OPTUNA_SCHEMA}" CASCADE')
    op.drop_index("ix_retrain_jobs_kind_status", table_name="retrain_jobs")
    with op.batch_alter_table("retrain_jobs") as batch:
        batch.drop_column("result")
        batch.drop_column("search_until")
        batch.drop_column("kind")
