"""Items can be removed from the catalog: ``items.removed_at``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``DELETE /v1/items/{id}`` (and ``genrec items remove``) takes an item out of
every list the service answers. The removal is soft, a timestamp on the row,
not a deleted row: servers learn of catalog changes by polling the rows whose
``change_epoch`` is above the newest they read (migration 0009), and a deleted
row leaves nothing to poll. The removal stamps ``change_epoch`` like any write,
so every replica picks it up at its next poll; a later PUT of the id clears
``removed_at`` (restores the item).

Nullable, no default: every existing item stays in the catalog. No index: the
column is read with the row (the poll, the whole-table read at startup), never
searched on. During a rolling upgrade, replicas still on the previous code keep
serving a removed item until they are upgraded (they do not read the column),
and their PUT of a removed item does not restore it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Removed items come back into the catalog: the previous code has no way to hold them.
    with op.batch_alter_table("items") as batch:
        batch.drop_column("removed_at")
