"""GroupCommit: groups form while a write is in flight; a failure fails the whole group."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from app.serving.group_commit import GroupCommit, GroupCommitClosed


class BlockingWriter:
    """Records each group; the first write waits for ``release`` (so others queue meanwhile)."""

    def __init__(self, fail_group: int | None = None) -> None:
        self.groups: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_group = fail_group

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        if len(self.groups) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail_group == len(self.groups):
            raise RuntimeError("commit failed")
        return [f"ok:{item}" for item in items]


def test_requests_arriving_during_a_commit_share_the_next_one() -> None:
    writer = BlockingWriter()
    group: GroupCommit[str, str] = GroupCommit(writer, wait_s=0.001, max_group=64)
    first = group.submit("a")  # alone after nothing: written at once
    assert writer.entered.wait(10)
    rest = [group.submit(x) for x in ("b", "c", "d")]
    writer.release.set()
    assert first.result(10) == "ok:a"
    assert [f.result(10) for f in rest] == ["ok:b", "ok:c", "ok:d"]
    assert writer.groups == [["a"], ["b", "c", "d"]]
    group.close()


def test_a_failed_group_fails_every_request_and_the_writer_lives_on() -> None:
    writer = BlockingWriter(fail_group=2)
    group: GroupCommit[str, str] = GroupCommit(writer, wait_s=0.001, max_group=64)
    first = group.submit("a")
    assert writer.entered.wait(10)
    failed = [group.submit(x) for x in ("b", "c")]
    writer.release.set()
    assert first.result(10) == "ok:a"
    for future in failed:
        with pytest.raises(RuntimeError, match="commit failed"):
            future.result(10)
    assert group.submit("e").result(10) == "ok:e"
    group.close()


def test_max_group_splits_a_queue() -> None:
    writer = BlockingWriter()
    group: GroupCommit[str, str] = GroupCommit(writer, wait_s=0.001, max_group=2)
    group.submit("a")
    assert writer.entered.wait(10)
    rest = [group.submit(x) for x in ("b", "c", "d")]
    writer.release.set()
    assert [f.result(10) for f in rest] == ["ok:b", "ok:c", "ok:d"]
    assert writer.groups == [["a"], ["b", "c"], ["d"]]
    group.close()


def test_close_writes_what_is_queued_then_refuses() -> None:
    writer = BlockingWriter()
    group: GroupCommit[str, str] = GroupCommit(writer, wait_s=0.001, max_group=64)
    group.submit("a")
    assert writer.entered.wait(10)
    queued = group.submit("b")
    closer = threading.Thread(target=group.close)
    closer.start()
    writer.release.set()
    closer.join(10)
    assert queued.result(0) == "ok:b"  # resolved before close returned
    with pytest.raises(GroupCommitClosed):
        group.submit("c")


def test_a_request_cancelled_while_queued_is_dropped_and_the_writer_lives_on() -> None:
    writer = BlockingWriter()
    group: GroupCommit[str, str] = GroupCommit(writer, wait_s=0.001, max_group=64)
    group.submit("a")
    assert writer.entered.wait(10)
    gone, kept = group.submit("b"), group.submit("c")
    assert gone.cancel()  # what asyncio.wrap_future does when the request is cancelled
    writer.release.set()
    assert kept.result(10) == "ok:c"
    assert writer.groups == [["a"], ["c"]]
    assert group.submit("d").result(10) == "ok:d"
    group.close()
