"""Pruning ``erased_users``: the erasure records that no stored model version needs.

An erasure's record does two jobs. Its first, telling every server to drop the
user's cached states and queued impressions, is done once every server has
polled it and the cache's TTL has passed. Its second lasts: a version that may
hold the user's erased rows (``app.serving.erased.predates``) must not serve the
user's training row. So a record is needed while some version in the store
holds the user (``user_ids.json``) and predates the erasure; a version that does
not hold them serves them as a newcomer with or without it. Every stored version
counts, not only those aliases name: any can be promoted or rolled back to, or
pinned by an experiment.

A version not saved yet needs records too: a retrain or tune job still queued or
running that read the log before an erasure saves a version holding the user's
erased rows, however long after the erasure it finishes. Were its record pruned
while the job ran (a job longer than the grace period, or one that started before
the erasure and ends after the prune), serving would use that version's training
row of the erased user. So a record is also needed while such a job may have read
the log at or before the erasure, by ``predates``'s rule (``CLOCK_MARGIN``): a tune
job records its cutoff in its progress (a retry reads up to it again), a retrain
job reads after its first claim (``started_at``, the database's clock, as the
read's cutoff is) less the read's ``COMMIT_MARGIN``, and a job never started
reads after now. The jobs are read before the store: a job that finishes
between the two reads saved its version first, so the store's read sees it.

What is pruned, then: records older than a grace period (longer than the cache's
TTL, so no state cached from the erased rows is left anywhere) that no stored
version and no unfinished job needs, except those of the table's newest epoch
(the next erasure takes that epoch plus one, and a server's poll past it would
pass over an erasure that took it again). A stored version that cannot be read
stops the prune: whether it needs a record cannot be told. What it cannot see: a
data file a later ``genrec train`` reads that still holds the user (remove them
there), and a ``genrec train|tune --data db`` run from the command line (no job
row) longer than the grace period that read the rows before the erasure; both are
the operator's (docs/deployment.md, "Erasing a user").

Running servers keep a pruned id in memory until they restart (harmless: a
version that holds the user is never a reason to prune).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import command_sessions, database_problem, session_scope
from app.repository import ErasureRow, delete_erasures, erasures_since, unfinished_job_starts
from app.serving.erased import Erasure, predates, predates_read
from app.users.erasure import ErasureError
from models_store import ModelStore, StoreError
from training.data.log_reader import COMMIT_MARGIN


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would do: the records it deletes, and why the others stay."""

    total: int
    prunable: list[tuple[str, int]] = field(default_factory=list)  # (user, epoch)
    recent: int = 0  # within the grace period
    newest: int = 0  # of the table's newest epoch (old enough, needed by no version)
    needed: int = 0  # held by a stored version that predates the erasure
    jobs: int = 0  # erased after an unfinished job's log read began (or may have)


def all_erasures(sessions: sessionmaker[Session], page_size: int = 1000) -> list[ErasureRow]:
    """Every erasure record, oldest epoch first."""
    rows: list[ErasureRow] = []
    while True:
        last = rows[-1] if rows else None
        with session_scope(sessions) as session:
            page = erasures_since(
                session,
                -1 if last is None else last.epoch,
                None if last is None else last.user_id,
                page_size,
            )
        rows.extend(page)
        if len(page) < page_size:
            return rows


def needed_by_store(store: ModelStore, rows: list[ErasureRow]) -> set[str]:
    """The users of ``rows`` whom some stored version holds and predates the erasure of.

    A version's user ids are read only when it predates some of the erasures still in
    question. ``ErasureError`` when a version cannot be read, or the store holds none
    (a mistyped store directory would make every record look unneeded)."""
    pending = {row.user_id: Erasure(row.erased_at, row.epoch) for row in rows}
    needed: set[str] = set()
    versions = 0
    for model in store.list_models():
        manifests, unreadable = store.version_listing(model)
        if unreadable:
            version, why = next(iter(unreadable.items()))
            raise ErasureError(
                f"cannot tell which erasures {model} version {version} needs ({why}); "
                "repair or delete that version first"
            )
        versions += len(manifests)
        for manifest in manifests:
            older = {u for u, e in pending.items() if u not in needed and predates(manifest, e)}
            if not older:
                continue
            try:
                held = store.user_ids(model, manifest.version)
            except StoreError as exc:
                raise ErasureError(
                    f"cannot tell which erasures {model} version {manifest.version} needs "
                    f"({exc}); repair or delete that version first"
                ) from None
            needed |= older.intersection(held)
    if not versions:
        raise ErasureError(
            f"the model store at {store.backend.location('')} holds no version: pruning against it would "
            "prune every erasure record; check GENREC_STORE_DIR"
        )
    return needed


def earliest_job_read(sessions: sessionmaker[Session]) -> datetime | None:
    """The earliest instant an unfinished job's log read (its cutoff) may be at; None when
    no unfinished job has begun one (module docstring)."""
    with session_scope(sessions) as session:
        jobs = unfinished_job_starts(session)
    reads = []
    for started_at, progress in jobs:
        recorded = progress.get("cutoff") if isinstance(progress, dict) else None
        cutoff = _instant(recorded) if isinstance(recorded, str) else None
        if cutoff is not None:
            reads.append(cutoff)
        elif started_at is not None:
            reads.append(started_at - COMMIT_MARGIN)
    return min(reads, default=None)


def _instant(text: str) -> datetime | None:
    """An aware instant, or None for a value that is none (a hand-edited progress)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def plan_prune(
    sessions: sessionmaker[Session],
    store: ModelStore,
    older_than: timedelta,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> PrunePlan:
    """The records a prune deletes (module docstring), and why the others stay."""
    rows = all_erasures(sessions)
    if not rows:
        return PrunePlan(total=0)
    before = now() - older_than
    old = [row for row in rows if row.erased_at < before]
    read = earliest_job_read(sessions) if old else None  # before the store: see above
    by_jobs = (
        set() if read is None else {r.user_id for r in old if predates_read(r.erased_at, read)}
    )
    rest = [r for r in old if r.user_id not in by_jobs]
    needed = needed_by_store(store, rest) if rest else set()
    kept = needed | by_jobs
    newest = rows[-1].epoch
    kept_newest = [r for r in old if r.user_id not in kept and r.epoch == newest]
    prunable = [(r.user_id, r.epoch) for r in old if r.user_id not in kept and r.epoch != newest]
    return PrunePlan(
        total=len(rows),
        prunable=prunable,
        recent=len(rows) - len(old),
        newest=len(kept_newest),
        needed=len(needed),
        jobs=len(by_jobs),
    )


def prune_erasures(
    sessions: sessionmaker[Session], store: ModelStore, older_than: timedelta, dry_run: bool
) -> tuple[PrunePlan, int]:
    """Plan, and unless ``dry_run`` delete the prunable records; (plan, rows deleted).

    A user erased again between the plan and the delete keeps the newer record (the
    delete names each record's epoch)."""
    plan = plan_prune(sessions, store, older_than)
    if dry_run or not plan.prunable:
        return plan, 0
    with session_scope(sessions) as session:
        deleted = delete_erasures(session, plan.prunable)
    return plan, deleted


def prune_in_database(
    database_url: str,
    store: ModelStore,
    older_than: timedelta,
    dry_run: bool,
    migrate: bool = True,
) -> tuple[PrunePlan, int]:
    """``genrec users prune-erasures``: ``prune_erasures`` on the database at ``database_url``;
    ``ErasureError`` (one line, for an operator) when it cannot be done."""
    try:
        with command_sessions(database_url, migrate) as sessions:
            return prune_erasures(sessions, store, older_than, dry_run)
    except SQLAlchemyError as exc:
        raise ErasureError(
            f"cannot prune erasure records in the database at {database_problem(database_url, exc)}"
        ) from None
    except StoreError as exc:  # the store's listing itself (a root that cannot be read)
        raise ErasureError(f"cannot read the model store: {exc}") from None
