"""Database URLs in messages without their passwords.

A tune storage, an interaction log and the service's own settings all name a database
by URL, and each says which one in its errors; these are the one way they mask it, so
no message prints a password and all show the same masked URL. SQLAlchemy renders a URL
it can parse with ``***``; a URL it cannot parse (which is often what the error is
about) is masked by pattern instead of being left out, so the operator still sees
which URL was meant.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url

#: The password of a URL's user info (``scheme://user:PASSWORD@host``).
_USER_INFO_PASSWORD = re.compile(r"(://[^/@:\s]*:)([^/@\s]*)@")


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (as SQLAlchemy renders it), also when
    SQLAlchemy cannot parse it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: mask whatever stands as the password
        return _USER_INFO_PASSWORD.sub(r"\1***@", url)


def without_password(text: str, url: str) -> str:
    """``text`` (an error message that may quote ``url`` or its password) without the
    password."""
    text = text.replace(url, masked_url(url))
    try:
        password = make_url(url).password
    except Exception:
        found = _USER_INFO_PASSWORD.search(url)
        password = found.group(2) if found else None
    if not password:
        return text
    # Only where a password stands (a URL's user:PASSWORD@, a DSN's password=PASSWORD): a
    # blind replace of a short password ("s", "1", or the user's name) garbled the host,
    # port and words of the message ("connection refu***ed").
    quoted = re.escape(str(password))
    text = re.sub(rf"(://[^/@:\s]*:){quoted}@", r"\1***@", text)
    return re.sub(rf"(password=['\"]?){quoted}(?=['\"]?(\s|$|;|,))", r"\1***", text)
