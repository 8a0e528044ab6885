"""The kind each catalog attribute holds; an impression's session apart from its user.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``attribute_kinds`` (name -> kind): ``app.catalog.items.save_items`` claims an
attribute's kind there and reads it back in the transaction that writes the
items, so two replicas (or a PUT and an import) cannot give one attribute two
kinds; the check used to read the server's in-memory catalog, which lags
other replicas' writes by the poll interval.

The table is filled from the items already stored, with the rule the servers
use (``app.rules.catalog.value_kind``), one page of items at a time. An
attribute that already holds several kinds (written by two replicas before this
revision) keeps them all, space-separated, so its items stay writable; its
rules stay as ambiguous as they were until its values are made one kind. Names
longer than the 256 characters a rule can name are not recorded (new writes
refuse them). Offline (``--sql``) there are no items to read: the table starts
empty.

``impressions.session_id`` (nullable): an ad-hoc request's ``session_id``, which
was recorded as the impression's ``user_id``, where it collided with the user of
the same id (exclude_recently_shown, window attribution, experiment units). A
session-only list now has ``user_id`` NULL. Impressions written before cannot be
told apart (an ad-hoc ``user_id`` was either) and stay as they are.

Additive: replicas on the previous code keep working; they neither read nor
write the table, so a new attribute they write during a rolling upgrade is
recorded by the next write of it on the new code, and they record sessions as
users until they are replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from app.rules.catalog import OTHER, value_kind

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_PAGE = 1000
_MAX_NAME = 256


def upgrade() -> None:
    kinds = op.create_table(
        "attribute_kinds",
        sa.Column("name", sa.String(_MAX_NAME), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
    )
    found = {} if context.is_offline_mode() else _stored_kinds(op.get_bind())
    for name, held in sorted(found.items()):
        if len(held) > 1:
            log.warning(
                "catalog attribute %r holds %s: each stays accepted (make them one kind)",
                name,
                " and ".join(sorted(held)),
            )
    rows = [{"name": name, "kind": " ".join(sorted(held))} for name, held in found.items()]
    for start in range(0, len(rows), _PAGE):
        op.bulk_insert(kinds, rows[start : start + _PAGE])
    with op.batch_alter_table("impressions") as batch:
        batch.add_column(sa.Column("session_id", sa.String(256), nullable=True))


def _stored_kinds(bind: sa.engine.Connection) -> dict[str, set[str]]:
    """Every attribute's kinds over the stored items, paged by primary key."""
    items = sa.table("items", sa.column("item_id", sa.String), sa.column("attributes", sa.JSON))
    found: dict[str, set[str]] = {}
    after: str | None = None
    while True:
        query = sa.select(items.c.item_id, items.c.attributes).order_by(items.c.item_id)
        if after is not None:
            query = query.where(items.c.item_id > after)
        rows = bind.execute(query.limit(_PAGE)).all()
        for _, attributes in rows:
            for name, value in (attributes or {}).items():
                kind = value_kind(value)
                if kind is not None and kind != OTHER and len(name) <= _MAX_NAME:
                    found.setdefault(name, set()).add(kind)
        if len(rows) < _PAGE:
            return found
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("impressions") as batch:
        batch.drop_column("session_id")
    op.drop_table("attribute_kinds")
