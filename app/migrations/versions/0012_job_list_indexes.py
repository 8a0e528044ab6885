"""Indexes for paging ``GET /admin/jobs`` by (``created_at``, ``id``), all jobs or one kind.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

The job list pages newest first by the key (``created_at``, ``id``) (keyset cursor,
``app.retrain.job_cursor``). Filtered by status or model, the existing
(status, created_at) and (model, created_at) indexes serve it (an incremental sort
orders a tie's few rows by id). Unfiltered or by kind, nothing did: every page was a
full scan of ``retrain_jobs`` plus a sort (the kind index (kind, status) gives no
order). Two indexes bound each page to an index range scan of the page's own rows:

* (``created_at``, ``id``): the unfiltered list, the dashboard's and the default;
* (``kind``, ``created_at``, ``id``): one kind; tune jobs are a small share of the jobs
  when retrains are scheduled, so a kind filter over the first index would read past
  many retrains per page.

Jobs are written a few times each, so the write cost is negligible. Additive only:
replicas on the previous code do not notice; downgrading drops the indexes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_retrain_jobs_created_at_id": ["created_at", "id"],
    "ix_retrain_jobs_kind_created_at_id": ["kind", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "retrain_jobs", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="retrain_jobs")
