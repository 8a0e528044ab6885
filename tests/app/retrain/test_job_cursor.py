"""The job list's cursor token: it round-trips the exact key, in UTC, and is opaque text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.retrain.job_cursor import MAX_CURSOR_LENGTH, JobCursor, decode, encode
from app.schemas_fields import INT64_MAX


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 1, 1, 12, 0, tzinfo=UTC),  # microsecond 0: still written out
        datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 4, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-8))),
    ],
)
def test_a_cursor_round_trips_its_key_in_utc(created_at: datetime) -> None:
    token = encode(JobCursor(created_at, INT64_MAX))
    assert token.isascii() and "=" not in token and len(token) <= MAX_CURSOR_LENGTH
    back = decode(token)
    assert back == JobCursor(created_at, INT64_MAX)  # the same instant
    assert back.created_at.utcoffset() == timedelta(0)
