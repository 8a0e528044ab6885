"""A partial index of the events that name a list and are not attributed to one.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

An event whose ``recommendation_id`` names a list another replica has not written yet
is logged unattributed; when that replica writes the list, it looks for such events by
the ids of the lists it wrote (late attribution, ``app.serving.late_attribution``), once
per batch of impressions. The index holds only the rows that query can want,
``recommendation_id IS NOT NULL AND impression_id IS NULL``: a row leaves it when it is
attributed, and the events without an id (most of the log) never enter it. Events
refused for good (another user's list, an item it did not show, an id that names no
list: a typo, a dropped or expired list) stay in it, so it grows with those alone.
The index is built with a plain ``CREATE INDEX``, as every index before it: on a large
log it holds writes to ``interactions`` while it builds (run ``genrec migrate`` at a quiet
time; docs/deployment.md, "Upgrading"). Both Postgres and SQLite have partial indexes; the
query repeats the predicate so that either planner can use it
(``repository.waiting_interactions``).

Additive only: replicas on the previous code do not notice; downgrading drops the index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_interactions_waiting"
#: The same text as ``app.db_models.WAITING`` (a migration does not import the models,
#: which move on after it).
WAITING = "recommendation_id IS NOT NULL AND impression_id IS NULL"


def upgrade() -> None:
    op.create_index(
        NAME,
        "interactions",
        ["recommendation_id"],
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="interactions")
