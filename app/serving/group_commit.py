"""Group commit: concurrent writes share one commit, each acknowledged after it.

Why: a committed transaction costs a round trip and (on Postgres) a WAL flush,
whatever its size, and one transaction per request made interaction writes
flat at 400–780 req/s from 1 to 128 connections, one thread-pool task each.
With a single writer thread, requests that arrive while a group is being
committed form the next group, so the number of commits stays level as load
grows and the rows per commit rise with it.

How: ``submit`` queues one request's work and returns a future. The writer
thread takes what is queued after at most ``wait_s`` from the oldest arrival
(or when ``max_group`` are waiting; a lone request after a lone group is taken
at once, as in ``app.serving.batcher``) and calls ``write`` with the group's
items in one call — the caller's ``write`` commits them all or none. Every
future is resolved only after ``write`` returned (committed); if it raises,
every request of the group gets that exception, so nothing unwritten is
acknowledged. A request cancelled while still queued (the client went away)
is dropped from its group. ``close`` writes what is queued, then stops the thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from app.core.writer_thread import WriterThread

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommitClosed(RuntimeError):
    """The writer is shutting down and takes no new work."""


@dataclass
class _Entry(Generic[Item, Result]):
    item: Item
    future: Future[Result]
    arrived: float  # time.monotonic()


class GroupCommit(WriterThread, Generic[Item, Result]):
    """One writer thread; ``write(items) -> one result per item``, all or nothing."""

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Sequence[Result]],
        wait_s: float,
        max_group: int,
        name: str = "group-commit",
        on_group: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(name)
        self.write = write
        self.wait_s = wait_s
        self.max_group = max_group
        self.name = name
        self.on_group = on_group  # observes each committed group's size (metrics)
        self._pending: list[_Entry[Item, Result]] = []
        self._last_group = 0

    def submit(self, item: Item) -> Future[Result]:
        """Queue ``item``; the future resolves once its group is committed (or failed)."""
        future: Future[Result] = Future()
        with self._cond:
            if self._closing:
                raise GroupCommitClosed(f"{self.name} is shutting down")
            self._start_thread()
            self._pending.append(_Entry(item, future, time.monotonic()))
            self._cond.notify()
        return future

    def close(self, timeout_s: float = 30.0) -> None:
        """Take nothing new, write everything queued, stop the writer thread."""
        self._close_thread(timeout_s)  # the thread commits what is queued before it ends

    def _take_group(self) -> list[_Entry[Item, Result]] | None:
        """The next group (after its window), or None when closing with nothing queued."""
        with self._cond:
            while not self._pending:
                if self._closing:
                    return None
                self._cond.wait()
            lone = len(self._pending) == 1 and self._last_group <= 1
            if not lone:
                deadline = self._pending[0].arrived + self.wait_s
                while len(self._pending) < self.max_group and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            taken = self._pending[: self.max_group]
            del self._pending[: self.max_group]
            self._last_group = len(taken)
        # A request cancelled while queued (its client left) is dropped, never acknowledged;
        # the others can no longer be cancelled, so resolving them below cannot fail.
        return [entry for entry in taken if entry.future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        while (group := self._take_group()) is not None:
            if not group:
                continue
            try:
                results = self.write([entry.item for entry in group])
            except BaseException as exc:  # every request of the group fails; the writer lives on
                for entry in group:
                    entry.future.set_exception(exc)
                continue
            if len(results) != len(group):  # a bug in ``write``; still answer every request
                error = RuntimeError(f"{self.name}: {len(results)} results for {len(group)}")
                for entry in group:
                    entry.future.set_exception(error)
                continue
            if self.on_group is not None:
                self.on_group(len(group))
            for entry, result in zip(group, results, strict=True):
                entry.future.set_result(result)
