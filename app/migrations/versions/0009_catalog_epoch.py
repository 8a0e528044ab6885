"""The catalog's change counter: servers poll items by commit order, not by clock.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Servers used to poll ``items.updated_at`` with a 10 s look-back. ``updated_at``
is the writer's clock when it wrote the row, before a transaction that can stay
open for minutes (a 50k-row ``genrec items import``): any commit in between moved
every server's watermark past the import's stamp, and the import was never read
(until a restart). Writers' clocks more than 10 s apart did the same.

``catalog_epoch`` (one row, ``id`` 1) counts the transactions that changed the
catalog; ``items.change_epoch`` (indexed) is the count of the transaction that last
changed the row. A writer increments the counter as its last statement and stamps
its rows with it, holding the counter's row lock until it commits, so counts are
handed out in commit order (``app.repository.upsert_items``) and servers poll
``change_epoch`` above the newest they read, with no look-back.

Existing rows get epoch 1 and the counter starts at 1 (a server reads the whole
table at startup anyway). ``change_epoch`` stays nullable: during a rolling
upgrade, replicas still on the previous code write rows without it; upgraded
replicas read those at their next start, and the next write of the row through
the new code stamps it. ``updated_at`` is still written, for people.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    epoch = op.create_table(
        "catalog_epoch",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(epoch, [{"id": 1, "value": 1}])
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("change_epoch", sa.BigInteger(), nullable=True))
    op.execute("UPDATE items SET change_epoch = 1")
    op.create_index("ix_items_change_epoch", "items", ["change_epoch"])


def downgrade() -> None:
    op.drop_index("ix_items_change_epoch", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("change_epoch")
    op.drop_table("catalog_epoch")
