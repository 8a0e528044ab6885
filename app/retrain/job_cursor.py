"""The ``GET /admin/jobs`` page cursor: where the last page ended, as an opaque token.

Jobs are listed newest first by the key (``created_at``, ``id``); a cursor names the
last job of a page by that key and the next page starts strictly after it (keyset
paging). A job recorded later sorts before the cursor, so it never shifts a page or
repeats a job the way an offset would; ``id`` breaks ``created_at`` ties, so jobs
recorded in the same microsecond are neither skipped nor repeated. The token is
base64url text so clients treat it as opaque (its form may change).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from app.repository import as_utc
from app.schemas_fields import INT64_MAX

#: Longer than any cursor ``encode`` makes; anything longer is refused unread.
MAX_CURSOR_LENGTH = 128

_SEPARATOR = "|"


class InvalidCursor(ValueError):
    """The cursor is not one ``GET /admin/jobs`` handed out (edited, truncated, made up)."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f"invalid cursor: {why}; pass a page's next_cursor back unchanged, "
            "or leave cursor out for the newest page"
        )


@dataclass(frozen=True)
class JobCursor:
    """The key of the last job on a page: the next page lists the jobs after it."""

    created_at: datetime
    job_id: int


def encode(cursor: JobCursor) -> str:
    """The token for ``cursor`` (UTC, microseconds: the precision both databases keep)."""
    text = f"{as_utc(cursor.created_at).isoformat(timespec='microseconds')}{_SEPARATOR}"
    text += str(cursor.job_id)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(token: str) -> JobCursor:
    """The cursor ``encode`` made, or ``InvalidCursor`` saying what is wrong with it."""
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise InvalidCursor(f"expected 1 to {MAX_CURSOR_LENGTH} characters")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        text = raw.decode("ascii")
    except (binascii.Error, ValueError):
        raise InvalidCursor("not a cursor this API handed out") from None
    stamp, sep, job_id = text.partition(_SEPARATOR)
    if not sep or not job_id.isdigit() or not job_id.isascii():
        raise InvalidCursor("not a cursor this API handed out")
    try:
        created_at = datetime.fromisoformat(stamp)
    except ValueError:
        raise InvalidCursor("its time is not a valid timestamp") from None
    if created_at.tzinfo is None:
        raise InvalidCursor("its time has no time zone")
    number = int(job_id)
    if not 1 <= number <= INT64_MAX:
        raise InvalidCursor("its job id is out of range")
    return JobCursor(as_utc(created_at), number)
