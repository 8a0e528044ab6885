"""Erased users in serving (``app.serving.erased``): which versions predate an erasure, how
a user resolves against them, and a cached state whose stamp still looks valid after the
erasure (SQLite hands a deleted newest row's id out again) is never served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.core.cache import MemoryCache
from app.core.metrics import Metrics
from app.repository import user_interactions
from app.serving.erased import CLOCK_MARGIN, ErasedUsers, Erasure, predates
from app.serving.state import log_stamp, user_context, user_contexts
from app.users import erase_users

ERASED_AT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _version(cutoff: datetime | None, job: bool, source: str = "log", read: bool = False) -> Any:
    """A version whose cutoff is ``cutoff``: a job's (before ``log_read_at`` was recorded),
    one that recorded the log read (``read``), or neither (trained from a file)."""
    training: dict[str, Any] = {"job_id": 7, "attempt": 1} if job else {"seconds": 1.0}
    iso = None if cutoff is None else cutoff.isoformat()
    if read:
        training["log_read_at"] = iso
    data = SimpleNamespace(source=source, cutoff=iso)
    manifest = SimpleNamespace(training=training, data=data)
    return SimpleNamespace(cutoff=cutoff, manifest=manifest, user_index={"u1": 3})


def _manifest(cutoff: datetime | None, job: bool, source: str = "log", read: bool = False) -> Any:
    return _version(cutoff, job, source, read).manifest


def test_only_a_version_that_read_the_log_after_the_erasure_is_clean() -> None:
    erasure = Erasure(ERASED_AT, epoch=1)
    later = ERASED_AT + CLOCK_MARGIN + timedelta(seconds=1)
    assert not predates(_manifest(later, job=True), erasure)
    assert not predates(_manifest(later, job=True, source="db+log"), erasure)  # the log twice
    # Within the clocks' margin, before, or no read time known: it may hold the user's rows.
    assert predates(_manifest(ERASED_AT + CLOCK_MARGIN, job=True), erasure)
    assert predates(_manifest(ERASED_AT - timedelta(days=1), job=True), erasure)
    # `genrec train --data db` records the read too, as jobs now do.
    assert not predates(_manifest(later, job=False, source="db", read=True), erasure)
    assert not predates(_manifest(later, job=True, read=True), erasure)
    assert predates(_manifest(ERASED_AT, job=False, source="db", read=True), erasure)
    assert predates(_manifest(later, job=False), erasure)  # from a file: the newest event time
    assert predates(_manifest(None, job=False), erasure)
    # A base data set the service cannot erase from may hold the user.
    assert predates(_manifest(later, job=True, source="ml-100k+log"), erasure)
    assert predates(_manifest(later, job=True, source="/data/clicks.csv"), erasure)


def test_an_erased_user_resolves_to_no_training_row_and_a_cache_key_of_its_own() -> None:
    erased = ErasedUsers()
    old = _version(ERASED_AT - timedelta(days=1), job=True)
    new = _version(ERASED_AT + timedelta(days=1), job=True)
    assert erased.resolve(old, "u1") == (3, "u1")
    assert erased.update([("u1", Erasure(ERASED_AT, 4))]) == ["u1"]
    assert erased.update([("u1", Erasure(ERASED_AT, 4))]) == []  # known already
    index, key = erased.resolve(old, "u1")
    assert index == -1 and key != "u1" and key.startswith("u1\x00")
    assert erased.resolve(new, "u1") == (3, "u1")  # trained after: served as it knows them
    assert erased.resolve(old, "u2") == (-1, "u2")
    erased.update([("u1", Erasure(ERASED_AT + timedelta(hours=1), 9))])  # erased again
    assert erased.resolve(old, "u1")[1] != key  # nothing cached after the first one is used


def test_a_stale_state_with_a_matching_stamp_is_not_served(client: TestClient) -> None:
    """A user the model never saw logs two rows (the log's newest), their fold-in state is
    cached; after the erasure they log two other items, which SQLite gives the same ids: the
    stamp matches the cached state's, which must not be served."""
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    logs = services.recommender.logs
    cache = MemoryCache(Metrics())

    def log(*items: str) -> int:
        events = [{"user_id": "n1", "item_id": i, "rating": 5} for i in items]
        assert client.post("/v1/interactions", json={"interactions": events}).status_code == 201
        with services.sessions() as session:
            return log_stamp(user_interactions(session, "n1"))

    stamp = log("1", "3")
    stale = user_context(model, "n1", logs, cache)
    assert stale.state is not None and cache.get("n1", "mult-vae", "1") is not None
    erase_users(services.sessions, ["n1"])
    client.app.state.erasures.refresh()  # type: ignore[attr-defined]
    assert cache.get("n1", "mult-vae", "1") is not None  # a cache the poll does not know of
    assert log("40", "42") == stamp  # the hazard: the same ids, the same stamp
    for context in (
        user_context(model, "n1", logs, cache),
        user_contexts(model, ["n1"], logs, cache)[0],
    ):
        assert context.state is not None and context.folded_in
        assert not np.allclose(context.state.numpy(), stale.state.numpy())
        assert sorted(context.seen.tolist()) == sorted(model.item_index[i] for i in ("40", "42"))


def test_a_job_that_read_the_log_during_a_long_erasure_predates_it(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """A retrain job that reads the log while an erasure is under way still sees the user's
    rows, so its version must predate the erasure. The erasure's time was read before its
    transaction: one that ran longer than the clocks' margin (its locks wait on another
    erasure) was dated so early that such a version counted as trained after it."""
    now = [ERASED_AT]
    job_reads: list[datetime] = []

    def a_long_transaction(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("DELETE FROM interactions") and not job_reads:
            now[0] += 2 * CLOCK_MARGIN
            job_reads.append(now[0])  # a job reads the log now: the rows are still there

    event.listen(engine, "after_cursor_execute", a_long_transaction)
    erased = erase_users(sessions, ["u1"], clock=lambda: now[0])
    assert job_reads
    assert predates(_manifest(job_reads[0], job=True), Erasure(erased.erased_at, epoch=1))


def test_a_read_time_that_is_no_instant_predates_every_erasure() -> None:
    """``training.log_read_at`` is free-form in the manifest: a hand-edited value that
    did not parse raised ValueError (a naive one TypeError) on every request of an
    erased user, and in ``genrec users prune-erasures``. Unknown is the safe side."""
    erasure = Erasure(ERASED_AT, epoch=1)
    for value in ("yesterday", "2026-12-07T13:00:00", ""):
        manifest = _manifest(None, job=False, source="db", read=True)
        manifest.training["log_read_at"] = value
        assert predates(manifest, erasure), value
