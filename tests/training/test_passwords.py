"""Database URLs in messages: the password never shows, the URL still does."""

from __future__ import annotations

import pytest

from training.passwords import masked_url, without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db:5432/genrec", "postgresql://u:***@db:5432/genrec"),
        # SQLAlchemy cannot read the port: the error is about this URL, so it is still shown
        ("postgresql://u:secret@db:notaport/genrec", "postgresql://u:***@db:notaport/genrec"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("sqlite:///var/genrec.db", "sqlite:///var/genrec.db"),
    ],
)
def test_masked_url_hides_the_password_parsed_or_not(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_without_password_masks_a_dsn_password_the_driver_quotes() -> None:
    url = "postgresql://u:hunter2@db:notaport/genrec"
    message = f'cannot read {url}: bad dsn "password=hunter2 host=db"'
    assert without_password(message, url) == (
        'cannot read postgresql://u:***@db:notaport/genrec: bad dsn "password=*** host=db"'
    )
