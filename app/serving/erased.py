"""``ErasedUsers``: the users erased (``DELETE /v1/users/{id}``) as this server last read.

An erasure deletes the user's logged rows, but two copies of their data outlive it:

* every model version trained before the erasure holds the user's training row
  (``LoadedModel.history``, ``user_index``), which serving would use as their
  trained state and their seen items;
* cached states (this process's memory tier, Redis) computed from the erased rows,
  whose stamp (``app.serving.state.log_stamp``) may still look valid: the log of
  a known user with nothing logged since the cutoff had stamp 0 before and after,
  and SQLite hands a deleted newest row's id out again.

So ``resolve`` is how serving names a user for one model version: a user erased
after the version's training data was read is *not* in that version (index -1:
fold-in from what they log afterwards, else the cold-start fallback) and their
states are cached under a key of that erasure's own (``cache_key``), which no
entry computed before this server knew of the erasure can carry. A request pays
a dict lookup; the set is fed by ``app.users.sync.ErasureSync``'s poll.

When does a version predate an erasure? A version trained on the log records
when it read it (``training["log_read_at"]``, its cutoff too: retrain and tune
jobs, ``genrec train|tune --data db``; ``training.pipeline.save_trained``; a
job's version saved before that key holds the same instant as its cutoff, and
its training record names the job). One trained on the log alone
(``data.source`` names no base data set, ``app.retrain.export``) that read it
more than ``CLOCK_MARGIN`` after the erasure read it without the user's erased
rows. Every other version (trained from files, or on a base data set the service
cannot erase from) is taken to predate every erasure: an erased user is always
folded in there, from what they logged since, which costs a trained user's
embedding and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.retrain.export import base_spec
from app.serving.loaded import LoadedModel
from models_store import Manifest
from training.pipeline import LOG_READ_AT

#: Tolerance for the clocks of the server that erased and the worker that read the log.
CLOCK_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Erasure:
    """When a user was erased, and the erasure's epoch (``erased_users``)."""

    erased_at: datetime
    epoch: int


def log_read_at(manifest: Manifest) -> datetime | None:
    """When all of a version's training data was read from the log; None when unknown, or
    when some of it came from elsewhere (a base data set)."""
    if base_spec(manifest.data.source):
        return None
    recorded = manifest.training.get(LOG_READ_AT)
    if recorded is None and "job_id" in manifest.training:
        recorded = manifest.data.cutoff  # a job's version saved before LOG_READ_AT
    if not isinstance(recorded, str):
        return None
    # The training record is free-form (no manifest check reads it): a value that is no
    # aware instant (a hand edit) is unknown, so the version predates every erasure,
    # rather than a ValueError or TypeError on every request of an erased user and in
    # ``genrec users prune-erasures``.
    try:
        read_at = datetime.fromisoformat(recorded)
    except ValueError:
        return None
    return read_at if read_at.tzinfo is not None else None


def predates(manifest: Manifest, erasure: Erasure) -> bool:
    """Whether the version may hold data the erasure deleted (module docstring).

    The recorded ``log_read_at`` is the read's cutoff, the database's clock less the
    commit margin (``training.data.log_reader.log_cutoff``): the read itself began at
    least that margin later. An earlier ``log_read_at`` is the conservative side here:
    it can only make more versions predate an erasure (an erased user folded in rather
    than served from a training row), never fewer.
    """
    read_at = log_read_at(manifest)
    return read_at is None or predates_read(erasure.erased_at, read_at)


def predates_read(erased_at: datetime, read_at: datetime) -> bool:
    """Whether a log read whose cutoff is ``read_at`` may have read rows erased at
    ``erased_at`` (another machine's clock: ``CLOCK_MARGIN``); also for a job's read
    whose version is not saved yet (``app.users.prune``)."""
    return erased_at + CLOCK_MARGIN >= read_at


class ErasedUsers:
    """The erased users this server knows of; read by every request, fed by the poll.

    Written by one thread (the poll, or a route that polls before answering): the
    dict is replaced, never changed in place, so a reader needs no lock.
    """

    def __init__(self) -> None:
        self._erased: dict[str, Erasure] = {}

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._erased

    def __len__(self) -> int:
        return len(self._erased)

    def get(self, user_id: str) -> Erasure | None:
        return self._erased.get(user_id)

    def update(self, erasures: Iterable[tuple[str, Erasure]]) -> list[str]:
        """Record erasures; returns the ids whose erasure is new (or newer) here."""
        merged = dict(self._erased)
        changed = []
        for user_id, erasure in erasures:
            held = merged.get(user_id)
            if held is None or held.epoch < erasure.epoch:
                merged[user_id] = erasure
                changed.append(user_id)
        if changed:
            self._erased = merged
        return changed

    def resolve(self, model: LoadedModel, user_id: str) -> tuple[int, str]:
        """(training index of ``user_id`` in ``model`` or -1, the key of their cached state)."""
        index = model.user_index.get(user_id, -1)
        if not self._erased:  # the common case: one attribute read
            return index, user_id
        erasure = self._erased.get(user_id)
        if erasure is None or not predates(model.manifest, erasure):
            return index, user_id
        return -1, cache_key(user_id, erasure)


def cache_key(user_id: str, erasure: Erasure) -> str:
    """The cache's name for an erased user's state after ``erasure``: no id holds a NUL
    (``app.schemas_fields.storable``), so it names no other user."""
    return f"{user_id}\x00erased:{erasure.epoch}"
