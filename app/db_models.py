"""SQLAlchemy 2 typed ORM: the interaction log (the service's source of truth).

The schema is a contract (docs/internals.md "Database"): the training side
reads this table by name with SQLAlchemy Core and must not import ``app``.
Schema changes go through an Alembic migration in ``app/migrations``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


#: The rows of ``ix_interactions_waiting``: events that name a list and are not attributed.
WAITING = "recommendation_id IS NOT NULL AND impression_id IS NULL"


class Base(DeclarativeBase):
    """Declarative base of every table the service owns."""


class Interaction(Base):
    """One logged user-item event; ``id`` orders events and stamps cached state."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_user_id_ts", "user_id", "ts"),
        # Migration 0013: the events still waiting for the list they name (late
        # attribution, ``app.serving.late_attribution``); partial, so only those rows.
        Index(
            "ix_interactions_waiting",
            "recommendation_id",
            postgresql_where=text(WAITING),
            sqlite_where=text(WAITING),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(256), nullable=False)
    item_id: Mapped[str] = mapped_column(String(256), nullable=False)
    rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    ts: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    # Migration 0004 (nullable: rows of older code have none). ``type`` is the event
    # type (``Settings.event_types``), ``recommendation_id`` the id the client sent,
    # ``impression_id`` the impression the event is attributed to (null: none).
    type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    recommendation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    impression_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Impression(Base):
    """What one recommendation response showed (``id`` = its ``recommendation_id``).

    Written in batches by ``app.serving.impressions.ImpressionRecorder``: analytics,
    not acknowledged data (a full queue drops, a crash loses what was queued).
    """

    __tablename__ = "impressions"
    __table_args__ = (
        Index("ix_impressions_user_id_created_at", "user_id", "created_at"),
        Index("ix_impressions_created_at", "created_at"),
        Index("ix_impressions_experiment_variant", "experiment", "variant"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # user | ad_hoc | similar
    items: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[str] = mapped_column(String(32), nullable=False)
    experiment: Mapped[str | None] = mapped_column(String(128), nullable=True)
    variant: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Migration 0005: server-side time to produce the list (experiment latency figures).
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Migration 0008: an ad-hoc request's ``session_id``. Not a user id, so a session-only
    # list has ``user_id`` NULL: neither exclude_recently_shown nor window attribution of
    # the user with the same id string sees it; experiments count it as its session.
    session_id: Mapped[str | None] = mapped_column(String(256), nullable=True)


class Experiment(Base):
    """An A/B experiment (``app.experiments``): its variants and whether it runs.

    ``running`` is true while it runs and NULL once stopped; its unique constraint
    keeps at most one experiment running.
    """

    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running | stopped
    running: Mapped[bool | None] = mapped_column(Boolean, nullable=True, unique=True)
    control: Mapped[str] = mapped_column(String(128), nullable=False)
    #: ``[{"name", "model", "version" (None = production), "weight"}]``, control included.
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    window_minutes: Mapped[float] = mapped_column(Float, nullable=False)
    mixing_sd: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RetrainJob(Base):
    """A durable retrain request; workers claim it under a lease (see ``app/retrain``).

    ``attempts`` doubles as the fencing token: a worker writes to the row only
    ``WHERE worker_id = me AND attempts = my attempt``, so a worker whose lease
    expired and was taken over can no longer finish, promote or report. A worker that
    stops hands its job back with ``attempts - 1`` (the pair stays unique: that worker
    claims nothing more), so only workers that died count towards ``max_attempts``.
    """

    __tablename__ = "retrain_jobs"
    __table_args__ = (
        Index("ix_retrain_jobs_status_created_at", "status", "created_at"),
        Index("ix_retrain_jobs_model_created_at", "model", "created_at"),
        Index("ix_retrain_jobs_kind_status", "kind", "status"),
        # Migration 0012: the job list's keyset pages, all jobs or one kind.
        Index("ix_retrain_jobs_created_at_id", "created_at", "id"),
        Index("ix_retrain_jobs_kind_created_at_id", "kind", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Migration 0006: ``retrain`` or ``tune`` (``app/tune``: ``model`` is then "tune" and
    # ``params`` the tuning request).
    kind: Mapped[str] = mapped_column(
        String(16), nullable=False, default="retrain", server_default="retrain"
    )
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    data: Mapped[str] = mapped_column(String(16), nullable=False)
    promote: Mapped[str] = mapped_column(String(16), nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    # Unique: two workers scheduling the same periodic slot insert one row, not two.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    worker_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    promoted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Migration 0006. A tune job's search window: other workers join its study until then.
    search_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Migration 0006. What a finished job found (tune: winner, leaderboard, report).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Item(Base):
    """An item of the service's own catalog (``app.catalog``): metadata and text.

    ``updated_at`` (the writer's clock) is written on every change, for people;
    ``change_epoch`` (migration 0009) is the ``CatalogEpoch`` of the transaction that
    last changed the row, which servers poll (index) to pick up items another process
    wrote, and text-aware models score a new item from ``text`` without retraining.
    NULL only for a row written by code older than migration 0009 (read at startup).

    ``removed_at`` (migration 0010) is set by ``DELETE /v1/items/{id}`` (``genrec items
    remove``): a soft removal, so every server learns of it through the same poll (a
    deleted row would leave nothing to poll) and a later PUT restores the item. A
    removed item is in no list the service answers (``app.serving.removed``).
    """

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_updated_at", "updated_at"),
        Index("ix_items_change_epoch", "change_epoch"),
    )

    item_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    change_epoch: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class CatalogEpoch(Base):
    """The catalog's change counter (migration 0009): one row, ``id`` 1.

    Each transaction that changes items increments ``value`` as its last statement
    (``app.repository.upsert_items``) and stamps its rows with the new value. The
    increment holds the row's lock until the transaction ends, so values are handed out
    in commit order: a server that has read the rows of epoch N has every earlier one.
    """

    __tablename__ = "catalog_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class AttributeKind(Base):
    """The kind a catalog attribute holds (migration 0008): ``app.rules.catalog.value_kind``
    of its first non-null value, fixed from then on.

    ``app.catalog.items.save_items`` records and reads it in the transaction that writes
    the items, so every replica and every import checks against one record. An attribute
    that held several kinds before migration 0008 has them all, space-separated.
    """

    __tablename__ = "attribute_kinds"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)


class RevokedDashboardSession(Base):
    """A dashboard session ended by logout (migration 0007), kept until its cookie expires.

    The session cookie is signed, not stored; this table is what makes logout
    revoke it on every replica (``app.dashboard.auth``).
    """

    __tablename__ = "dashboard_revoked_sessions"
    __table_args__ = (Index("ix_dashboard_revoked_sessions_expires_at", "expires_at"),)

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ErasedUser(Base):
    """A user whose data was erased (migration 0011): ``DELETE /v1/users/{id}``.

    The erasure deletes the user's rows from ``interactions`` and ``impressions``; this
    row is what remains, and all that remains: the id, when, and the erasure's ``epoch``.
    Servers poll it by ``epoch`` (``app.users.sync``), as they poll the catalog, to stop
    serving the user's cached state and the training history that model versions trained
    before the erasure still hold (``app.serving.erased``). ``epoch`` is handed out in
    commit order (``app.repository.erase_users``); an id erased again gets a new one.
    """

    __tablename__ = "erased_users"
    __table_args__ = (Index("ix_erased_users_epoch", "epoch"),)

    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)
