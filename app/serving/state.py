"""User state = f(training row in the artifact ∪ interactions logged after its cutoff).

Resolution order for one (user, model version):

* known to the artifact, nothing logged after the cutoff -> the trained state
  (``users=[idx]``) over the training row;
* anything logged after the cutoff on an item the model knows, or unknown to the
  artifact -> fold-in (``users=[-1]``) over training row ∪ logged items, the latest
  rating winning; an event of a type of weight <= 0 (``dislike``) only marks its item
  seen (``logged_events``);
* unknown and nothing (known to the model) logged -> no state: the caller
  answers with the popularity fallback.

The state is cached with a stamp of the log rows it includes (``log_stamp``);
the cache entry is used only while the log still says the same, so a lost
invalidation costs a recomputation, never a stale answer.

An erased user (``DELETE /v1/users/{id}``) is resolved by ``ErasedUsers.resolve``
(``LogReader.erased``): against a version trained before the erasure they are
unknown to the artifact, whatever its ``user_index`` says, and their state is
cached under a key of the erasure's own, so no state computed from the erased
rows is served again (``app.serving.erased``).

When the database is unreachable, reads degrade instead of failing: the
cached state is used as it is, else the state is computed from the artifact's
training row, and the answer says ``degraded``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import torch
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.core.cache import CachedState, StateCache
from app.core.db import (
    DatabaseGuard,
    DatabaseUnavailable,
    make_sessionmaker,
    session_scope,
)
from app.core.errors import ApiError
from app.core.metrics import Metrics
from app.repository import LoggedInteraction, user_interactions, users_interactions
from app.serving.erased import ErasedUsers
from app.serving.loaded import LoadedModel
from training.models.base import History

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserContext:
    """What ranking needs about one user for one model version."""

    state: torch.Tensor | None  # (1, D); None = nothing known -> fallback
    seen: np.ndarray  # (S,) item indices the user already has (training ∪ log)
    folded_in: bool
    degraded: bool = False  # answered without the database (artifact + cache only)
    # Mean of the user's rating values (training row ∪ ratings logged after the cutoff);
    # None when there are none. The baseline a prediction falls back to for an item the
    # model does not know; filled by ``user_context`` and by ``user_contexts(with_mean=True)``.
    mean_rating: float | None = None


def database_unavailable(exc: Exception) -> ApiError:
    """The one 503 every database failure becomes (details stay in the server log)."""
    return ApiError(
        503,
        "database_unavailable",
        f"the interaction database is unavailable ({type(exc).__name__}); retry later",
    )


class LogReader:
    """Reads users' logged interactions through the database circuit breaker.

    Reads never fail a request: when the database is down (or was a moment
    ago) ``read`` returns None and the caller answers from the artifact and
    the cache, flagged ``degraded``. ``engine`` is ``make_read_engine``'s (autocommit
    on Postgres): each read is one statement.
    """

    def __init__(
        self,
        engine: Engine,
        guard: DatabaseGuard,
        metrics: Metrics,
        seen_only_types: Collection[str] = frozenset(),
        erased: ErasedUsers | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(self.engine)
        self.guard = guard
        self.metrics = metrics
        #: Event types of weight <= 0 (``GENREC_EVENT_TYPES``): their items are seen, their
        #: events never feedback (``logged_events``).
        self.seen_only_types = frozenset(seen_only_types)
        #: Erased users (``app.serving.erased``): what the log no longer holds of them must
        #: not come back from a version's training rows or the cache.
        self.erased = erased if erased is not None else ErasedUsers()

    def read(self, user_id: str, after: datetime | None) -> list[LoggedInteraction] | None:
        """The user's log rows after ``after`` (all when None); None when the DB is unavailable."""
        try:
            with self.guard.attempt(), session_scope(self.sessions) as session:
                return user_interactions(session, user_id, after)
        except DatabaseUnavailable:
            return None
        except SQLAlchemyError as exc:
            self.metrics.database_errors.labels(operation="read").inc()
            log.warning("reading the log of user %r failed, answering degraded: %s", user_id, exc)
            return None

    def read_many(
        self, user_ids: Sequence[str], after: datetime | None, whole_log: Sequence[str]
    ) -> dict[str, list[LoggedInteraction]] | None:
        """Logs of a micro-batch in one statement (see ``users_interactions``); None when down.

        On a plain ``Connection``, not a ``Session``: it runs once per batch on the
        scoring thread, and the session's begin/commit/close was 40% of it (94 vs
        156-168 us for one user on SQLite, docs/performance.md, "Which kind of
        request costs the mix most").
        """
        try:
            with self.guard.attempt(), self.engine.connect() as connection:
                return users_interactions(connection, user_ids, after, whole_log)
        except DatabaseUnavailable:
            return None
        except SQLAlchemyError as exc:
            self.metrics.database_errors.labels(operation="read").inc()
            log.warning("reading the log of %d users failed, degraded: %s", len(user_ids), exc)
            return None


#: ``log_stamp`` keeps the row count above this bit; log ids stay below 2**40.
STAMP_COUNT_SHIFT = 40


def log_stamp(rows: Sequence[LoggedInteraction]) -> int:
    """Which logged rows a state includes, as one int: the newest id and the row count.

    The newest id alone is not enough on Postgres: an id is drawn when a
    transaction inserts, not when it commits, so with two writers (replicas) a
    row with a smaller id can become visible after a bigger one was read; the
    count changes then although the newest id does not. (The writer's
    invalidation after its commit caught that case too, but not when a reader
    stored its state just after it, nor in another process's memory tier.)
    0 for no rows.
    """
    if not rows:
        return 0
    return max(r.id for r in rows) + (len(rows) << STAMP_COUNT_SHIFT)


def history_value(model: LoadedModel, rating: float | None) -> float | None:
    """History value of a logged event; None = use for seen-exclusion only.

    A click without a rating is a positive signal for ranking models (the top of
    the artifact's rating range: 1.0 on implicit data) but carries no rating for
    a rating model, which would otherwise learn a made-up rating from it.
    """
    if rating is not None:
        return float(rating)
    return None if model.predicts_ratings else model.rating_range[1]


def merge_history(
    model: LoadedModel,
    base_items: Iterable[int],
    base_values: Iterable[float],
    events: Iterable[tuple[int, float | None]],
    seen_only: Iterable[int] = (),
) -> tuple[list[int], list[float], np.ndarray]:
    """Fold-in history (items, values) and the seen set; later events win per item.

    ``base_items`` is a training row, whose items are distinct; with no events
    (the common case for a known user) it is returned as it is, without the
    per-item dictionary: that dictionary was ~30 us of every request.
    ``seen_only`` items are added to the seen set and nothing else (``logged_events``).
    """
    events = list(events)
    seen_only = list(seen_only)
    if not events and not seen_only:
        items = np.asarray(base_items, dtype=np.int64)
        return items.tolist(), np.asarray(base_values, dtype=np.float64).tolist(), items
    merged: dict[int, float] = {
        int(i): float(v) for i, v in zip(base_items, base_values, strict=True)
    }
    seen = set(merged)
    seen.update(seen_only)
    for item, rating in events:
        seen.add(item)
        value = history_value(model, rating)
        if value is not None:
            merged[item] = value
    return list(merged), list(merged.values()), np.fromiter(seen, dtype=np.int64, count=len(seen))


def logged_events(
    model: LoadedModel, rows: Sequence[LoggedInteraction], seen_only_types: Collection[str]
) -> tuple[list[tuple[int, float | None]], list[int]]:
    """Logged rows (of items the model knows) as fold-in events and seen-only items.

    A row of a type whose weight is <= 0 (``dislike``) only marks its item seen:
    retraining leaves such events out ("negative feedback never becomes a positive",
    docs/design.md), and the live state must not learn otherwise. Folded in, an
    unrated dislike read as the top of the rating range, as a click does.
    """
    if not seen_only_types:
        return [(model.item_index[r.item_id], r.rating) for r in rows], []
    events, seen_only = [], []
    for r in rows:
        if r.type in seen_only_types:
            seen_only.append(model.item_index[r.item_id])
        else:
            events.append((model.item_index[r.item_id], r.rating))
    return events, seen_only


def compute_state(
    model: LoadedModel, user: int, items: list[int], values: list[float]
) -> torch.Tensor:
    """(1, D) state of one user: ``user`` is the training index or -1 for fold-in."""
    history = History.from_lists([items], [values], model.n_items, device=model.device)
    with torch.inference_mode():
        return model.scorer.user_state(torch.tensor([user], device=model.device), history)


def user_context(
    model: LoadedModel, user_id: str, logs: LogReader, cache: StateCache
) -> UserContext:
    """State and seen items of ``user_id`` under ``model`` (see the module docstring)."""
    index, key = logs.erased.resolve(model, user_id)
    # An unknown user's whole log is new to the model; a known user's only after the cutoff.
    logged = logs.read(user_id, model.cutoff if index >= 0 else None)
    if logged is None:
        return _degraded_context(model, key, index, cache)
    # Only rows the model can use: an item it learns later (catalog) must refresh the state.
    usable = [r for r in logged if r.item_id in model.item_index]
    events, seen_only = logged_events(model, usable, logs.seen_only_types)
    stamp = log_stamp(usable)
    base_items, base_values = _training_row(model, index)
    items, values, seen = merge_history(model, base_items, base_values, events, seen_only)
    if index < 0 and not items:
        return UserContext(state=None, seen=seen, folded_in=False)
    # Refolded exactly when the stamp says so: with rows of unknown items counted here but
    # not in the stamp, the trained and the refolded state both carried stamp 0, and two
    # replicas each kept whichever they had cached first (different answers, for good).
    folded_in = index < 0 or bool(usable)
    mean = _mean(values)
    cached = cache.get(key, model.name, model.version)
    if cached is not None and cached[1] == stamp:
        state = _on_device(model, cached[0])
        return UserContext(state=state, seen=seen, folded_in=folded_in, mean_rating=mean)
    state = compute_state(model, -1 if folded_in else index, items, values)
    cache.set(key, model.name, model.version, state[0].detach().cpu().numpy(), stamp)
    return UserContext(state=state, seen=seen, folded_in=folded_in, mean_rating=mean)


def user_contexts(
    model: LoadedModel,
    user_ids: Sequence[str],
    logs: LogReader,
    cache: StateCache,
    with_mean: bool = False,
) -> list[UserContext]:
    """``user_context`` for a micro-batch: one log query, one cache round trip and one
    batched ``user_state`` call for every user whose cached state is missing or stale.

    This runs for every recommendation batch while the event loop waits on the GIL,
    so the usual case (a known user, nothing logged since the cutoff, state cached)
    touches no per-item Python: the seen set is the artifact's training row as it
    is, and all cached states become tensors in one conversion. ``with_mean`` also
    fills each context's ``mean_rating`` (predictions' baseline), as ``user_context`` does.
    """
    resolved = [logs.erased.resolve(model, u) for u in user_ids]
    indices = [index for index, _ in resolved]
    keys = [key for _, key in resolved]  # the cache's names (an erased user's differs)
    known = [u for u, i in zip(user_ids, indices, strict=True) if i >= 0]
    unknown = [u for u, i in zip(user_ids, indices, strict=True) if i < 0]
    logged = logs.read_many(known, model.cutoff, unknown)
    if logged is None:
        return [_degraded_context(model, k, i, cache) for k, i in zip(keys, indices, strict=True)]
    # Only rows the model can use count (see ``user_context``).
    usables = [[r for r in logged.get(u, ()) if r.item_id in model.item_index] for u in user_ids]
    cached = _cached_states(model, keys, indices, usables, cache)
    contexts: list[UserContext | None] = []
    hits: list[tuple[int, np.ndarray, np.ndarray, bool, float | None]] = []
    # (b, state, seen, folded_in, mean rating)
    pending: list[tuple[int, int, list[int], list[float], np.ndarray, int]] = []
    means: dict[int, float | None] = {}  # b -> mean rating of a pending (fold-in) user
    for b, index in enumerate(indices):
        usable = usables[b]
        # Only rows the model can use stamp the state, and decide the refold (``user_context``).
        stamp = log_stamp(usable)
        base_items, base_values = _training_row(model, index)
        folded_in = index < 0 or bool(usable)
        hit = cached[b]
        if hit is not None and hit[1] == stamp:  # only users who can have a state have one
            seen = base_items
            mean = _mean(base_values) if with_mean else None
            if usable:  # plus what was logged since the cutoff
                since = np.asarray([model.item_index[r.item_id] for r in usable], np.int64)
                seen = np.union1d(base_items, since)
                if with_mean:
                    events, seen_only = logged_events(model, usable, logs.seen_only_types)
                    merged = merge_history(model, base_items, base_values, events, seen_only)
                    mean = _mean(merged[1])
            hits.append((b, hit[0], seen, folded_in, mean))
            contexts.append(None)
            continue
        events, seen_only = logged_events(model, usable, logs.seen_only_types)
        items, values, seen = merge_history(model, base_items, base_values, events, seen_only)
        if index < 0 and not items:
            contexts.append(UserContext(state=None, seen=seen, folded_in=False))
            continue
        contexts.append(None)
        pending.append((b, -1 if folded_in else index, items, values, seen, stamp))
        if with_mean:
            means[b] = _mean(values)
    if hits:
        stacked = torch.from_numpy(np.stack([h[1] for h in hits]).astype(np.float32, copy=False))
        stacked = stacked.to(model.device)  # (H, D): one conversion for every cached state
        for row, (b, _, seen, folded_in, mean) in enumerate(hits):
            contexts[b] = UserContext(
                stacked[row : row + 1], seen, folded_in=folded_in, mean_rating=mean
            )
    if pending:
        states = compute_states(
            model, [p[1] for p in pending], [p[2] for p in pending], [p[3] for p in pending]
        )
        stored = states.cpu().numpy()
        entries = []
        for row, (b, user, _, _, seen, stamp) in enumerate(pending):
            contexts[b] = UserContext(
                state=states[row : row + 1], seen=seen, folded_in=user < 0, mean_rating=means.get(b)
            )
            entries.append((keys[b], stored[row], stamp))
        cache.set_many(entries, model.name, model.version)  # one round trip for the batch
    return [c for c in contexts if c is not None]


def _cached_states(
    model: LoadedModel,
    keys: Sequence[str],
    indices: Sequence[int],
    usables: Sequence[Sequence[LoggedInteraction]],
    cache: StateCache,
) -> list[CachedState | None]:
    """The cache's entry (under ``keys``, the users' cache names) for each user that can
    have a state; None for the rest.

    A user the artifact does not know and whose log holds nothing the model can use
    has no state (the popularity fallback), so nothing was ever cached for them:
    asking would be a Redis round trip for a certain miss, and such users (new
    visitors before their first interaction) are common. ``user_context`` skips
    them the same way.
    """
    wanted = [
        b for b, (i, usable) in enumerate(zip(indices, usables, strict=True)) if i >= 0 or usable
    ]
    found = cache.get_many([keys[b] for b in wanted], model.name, model.version) if wanted else []
    out: list[CachedState | None] = [None] * len(keys)
    for b, entry in zip(wanted, found, strict=True):
        out[b] = entry
    return out


def compute_states(
    model: LoadedModel, users: list[int], items: list[list[int]], values: list[list[float]]
) -> torch.Tensor:
    """(B, D) states in one ``user_state`` call; ``users[b]`` is a training index or -1."""
    history = History.from_lists(items, values, model.n_items, device=model.device)
    with torch.inference_mode():
        return model.scorer.user_state(torch.tensor(users, device=model.device), history)


def _degraded_context(model: LoadedModel, key: str, index: int, cache: StateCache) -> UserContext:
    """Without the log: a cached state as it is (its stamp cannot be checked), else the
    artifact's training row; an unknown user with nothing cached gets the fallback.

    Nothing is written to the cache: a state computed without the log may be missing
    interactions, and the next healthy request must not find it.
    """
    base_items, base_values = _training_row(model, index)
    seen = np.asarray(base_items, dtype=np.int64)
    mean = _mean(base_values)  # the training row only: the log cannot be read
    cached = cache.get_newest(key, model.name, model.version)  # no stamp to check
    if cached is not None:
        state = _on_device(model, cached[0])
        return UserContext(state, seen, folded_in=False, degraded=True, mean_rating=mean)
    if index < 0:
        return UserContext(state=None, seen=seen, folded_in=False, degraded=True)
    items, values, _ = merge_history(model, base_items, base_values, [])
    state = compute_state(model, index, items, values)
    return UserContext(state=state, seen=seen, folded_in=False, degraded=True, mean_rating=mean)


def _mean(values: Sequence[float] | np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _training_row(model: LoadedModel, index: int) -> tuple[np.ndarray, np.ndarray]:
    if index < 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    return model.training_row(index)


def _on_device(model: LoadedModel, state: np.ndarray) -> torch.Tensor:
    """(1, D) tensor of a cached (D,) state on the model's device."""
    # A copy: cached arrays are read-only (shared, or a view on Redis bytes).
    return torch.tensor(state, dtype=torch.float32, device=model.device).unsqueeze(0)


def ad_hoc_events(
    model: LoadedModel, history: Iterable[tuple[str, float | None]]
) -> tuple[list[tuple[int, float | None]], list[str]]:
    """An anonymous history as (item index, rating) events, and the item ids the model
    does not know (listed once each, in order; they are ignored, not fatal)."""
    events: list[tuple[int, float | None]] = []
    unknown: list[str] = []
    for item_id, rating in history:
        index = model.item_index.get(item_id)
        if index is None:
            unknown.append(item_id)
        else:
            events.append((index, rating))
    return events, list(dict.fromkeys(unknown))


def ad_hoc_contexts(
    model: LoadedModel, histories: Sequence[Sequence[tuple[int, float | None]]]
) -> list[UserContext]:
    """Fold-in contexts of a micro-batch's anonymous histories (``ad_hoc_events``): one
    ``user_state`` call for all of them, as ``user_contexts`` folds in its users. Never
    cached: an anonymous history has no id to cache it under."""
    merged = [merge_history(model, [], [], events) for events in histories]
    # Nothing the model can use (only seen-only events): the popularity fallback.
    contexts = [UserContext(state=None, seen=seen, folded_in=False) for _, _, seen in merged]
    folding = [b for b, (items, _, _) in enumerate(merged) if items]
    if not folding:
        return contexts
    items = [merged[b][0] for b in folding]
    values = [merged[b][1] for b in folding]
    states = compute_states(model, [-1] * len(folding), items, values)
    for row, b in enumerate(folding):
        contexts[b] = UserContext(state=states[row : row + 1], seen=merged[b][2], folded_in=True)
    return contexts
