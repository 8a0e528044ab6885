"""Items stored with text no answer can encode (a lone UTF-16 surrogate, bytes that are not
UTF-8), from before the API refused them or from another tool, are served with U+FFFD in
their place (``app.core.text``), never a 500 or a 503.

What each backend really holds: Postgres keeps the JSON escape ``\\ud800`` in a ``json``
column (``items.attributes``) but refuses it in a text column (titles); SQLite keeps the
escape, and keeps bytes that are not UTF-8 in a text column when another client wrote them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DataError

from app.core.db import upgrade_database
from app.serving.loaded import _titles
from tests.app.conftest import ClientFactory
from tests.app.dashboard.login import log_in

TOKEN = "stored-text-token"
#: An item written around the API: ``title`` and ``attributes`` are SQL, not parameters.
ROW = (
    "INSERT INTO items (item_id, title, text, attributes, created_at, updated_at, change_epoch) "
    "VALUES (:item_id, {title}, NULL, :attributes, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
)
#: A JSON object whose string holds a lone surrogate, as ``json.dumps`` writes it.
ESCAPED = '{"genre": "x\\ud800"}'


def _insert(url: str, item_id: str, title_sql: str, attributes: str = "{}") -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(ROW.format(title=title_sql)), {"item_id": item_id, "attributes": attributes}
            )
    finally:
        engine.dispose()


def test_sqlite_items_with_broken_text_are_served_with_replacement_characters(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/broken.db"
    upgrade_database(url)
    # Bytes ED A0 80: a surrogate as UTF-8 would write it, which is not UTF-8.
    _insert(url, "broken", "CAST(X'41EDA080' AS TEXT)", ESCAPED)
    _insert(url, "19", "CAST(X'4974656DEDA080' AS TEXT)")  # an item the models know
    client = make_client(database_url=url, admin_token=TOKEN)

    got = client.get("/v1/items/broken")
    assert got.status_code == 200, got.text  # was a 503 database_unavailable
    assert got.json()["title"] == "A\ufffd\ufffd\ufffd"
    assert got.json()["attributes"] == {"genre": "x\ufffd"}  # was a 500
    # The catalog sync read every row (a text-aware model would serve its titles).
    assert client.get("/v1/items/18/similar", params={"k": 59}).status_code == 200
    log_in(client, TOKEN)
    for page in ("/dashboard/catalog/items/19", "/dashboard/catalog?q=19", "/dashboard/explore"):
        answer = client.get(page)
        assert answer.status_code == 200, (page, answer.text[:300])
    assert "Item\ufffd\ufffd\ufffd" in client.get("/dashboard/catalog/items/19").text


def test_postgres_keeps_the_escape_in_json_only_and_it_is_served_replaced(
    make_client: ClientFactory, postgres_url: str, redis_url: str, redis_namespace: str
) -> None:
    upgrade_database(postgres_url)
    with pytest.raises(DataError, match="invalid byte sequence"):
        _insert(postgres_url, "raw", "convert_from('\\x41eda080'::bytea, 'UTF8')")
    _insert(postgres_url, "escaped", "'Escaped'", ESCAPED)
    client = make_client(
        database_url=postgres_url,
        redis_url=redis_url,
        cache_namespace=redis_namespace,
        admin_token=TOKEN,
    )
    got = client.get("/v1/items/escaped")
    assert got.status_code == 200, got.text  # was a 500
    assert (got.json()["title"], got.json()["attributes"]) == ("Escaped", {"genre": "x\ufffd"})


def test_a_model_title_with_a_lone_surrogate_is_served_replaced() -> None:
    """A version's items.json (the training data's titles) holds the escape just the same."""
    raw = b'{"7": {"title": "Seven \\udc80"}, "8": {"title": "Eight \\ud83d\\ude00"}}'
    assert _titles(raw, ["7", "8", "9"]) == ["Seven \ufffd", "Eight \U0001f600", None]
