"""Users can be erased: ``erased_users`` (user_id, erased_at, epoch).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

``DELETE /v1/users/{id}`` (and ``genrec users erase``) deletes the user's rows
from ``interactions`` and ``impressions`` in one transaction and records the
erasure here. Deleted rows leave nothing for other servers to notice, yet each
server holds the user's state in its cache and every model version trained
before the erasure holds the user's training history: servers poll this table
by ``epoch`` (handed out in commit order, like the catalog's change counter,
``app.repository.erase_users``) and from then on serve the user, under such a
version, as a user with no training history, from a cache entry of its own.

A new, empty table: nothing existing changes. During a rolling upgrade replicas
still on the previous code keep serving an erased user's cached and trained
state until they are upgraded (they do not read the table); the erased rows are
gone for them too. Downgrading drops the record of erasures (the rows stay
deleted): servers of the previous code serve trained versions' histories again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erased_users",
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_erased_users_epoch", "erased_users", ["epoch"])


def downgrade() -> None:
    op.drop_index("ix_erased_users_epoch", table_name="erased_users")
    op.drop_table("erased_users")
