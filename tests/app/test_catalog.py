"""The item catalog: validation, import, copy-on-write extension, sync, cold-start accuracy.

A tiny ConvMF is trained once per module on ``catalog_data.text_ratings``:
six items (three per topic) are left out of training entirely and enter
only through the catalog, as items added after training do.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.catalog import (
    CatalogError,
    CatalogSync,
    TextItem,
    extend_model,
    import_records,
    read_item,
    save_items,
    validate_item,
)
from app.core.cache import MemoryCache
from app.core.db import (
    DatabaseGuard,
    make_engine,
    make_sessionmaker,
    session_scope,
    upgrade_database,
)
from app.core.metrics import Metrics
from app.repository import NewInteraction, NewItem, add_interactions, upsert_items
from app.serving.holder import ModelHolder
from app.serving.state import LogReader, user_context
from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, TextRatings, text_ratings
from training import metrics as M
from training.data.catalog_file import read_catalog_file
from training.models.base import History
from training.pipeline import train_and_save


@pytest.fixture(scope="module")
def data() -> TextRatings:
    return text_ratings(seed=0)


@pytest.fixture(scope="module")
def convmf_store(data: TextRatings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Production convmf v1 (tiny, seconds) and a non-text-aware pmf v1."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("catalog-store")
    store = ModelStore(root)
    train_and_save(store, "convmf", data.train, dict(TINY_CONVMF), source="text", promote=True)
    pmf = {k: TINY_CONVMF[k] for k in ("factors", "lambda_u", "lambda_v", "epochs")}
    train_and_save(store, "pmf", data.train, pmf, source="text", promote=True)
    return root


@pytest.fixture
def store(convmf_store: Path, tmp_path: Path) -> ModelStore:
    """A private copy a test may promote new versions into."""
    shutil.copytree(convmf_store, tmp_path / "store")
    return ModelStore(tmp_path / "store")


def _holder(store: ModelStore) -> ModelHolder:
    return ModelHolder(store, torch.device("cpu"), Metrics(), default_model="convmf")


def _items(data: TextRatings, stamp: str = "s1") -> list[TextItem]:
    return [TextItem(i, f"new {i}", text, stamp) for i, (_, text) in data.held_out.items()]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"item_id": " "}, "item_id must be a non-empty string"),
        ({"item_id": "x" * 300}, "item_id is 300 characters long; the limit is 256"),
        ({"title": "t" * 1001}, "title is 1001 characters long; the limit is 1000"),
        ({"text": "w" * 100_001}, "text is 100001 characters long"),
        ({"attributes": {"x": float("nan")}}, "attributes must be plain JSON"),
        ({"attributes": {"x": {1, 2}}}, "attributes must be plain JSON"),
        ({"attributes": {"x": "y" * 70_000}}, "the limit is 65536"),
        ({"text": "a\x00b"}, "text contains a NUL character"),
        ({"attributes": {"x": "\x00"}}, "attributes contain a NUL character"),
    ],
)
def test_validation_says_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"item_id": "1", "title": None, "text": None, "attributes": {}}
    with pytest.raises(CatalogError, match=message.replace("(", r"\(")):
        validate_item(**{**args, **kwargs})  # type: ignore[arg-type]


def test_validation_normalises_empty_strings_to_none() -> None:
    assert validate_item("1", "", "", None) == NewItem("1", None, None, {})


# --------------------------------------------------------------------------- extension


def test_extension_appends_rows_from_text_and_leaves_the_old_model_alone(
    store: ModelStore, data: TextRatings
) -> None:
    model = _holder(store).get("convmf")
    n, table = model.n_items, model.scorer.t["items"].clone()
    items = _items(data)
    extended = extend_model(model, items)

    new_ids = [it.item_id for it in items]
    assert extended.n_items == n + len(items) == extended.scorer.n_items
    assert extended.item_ids[n:] == new_ids
    assert [extended.item_index[i] for i in new_ids] == list(range(n, n + len(items)))
    assert extended.history.shape == (model.history.shape[0], n + len(items))
    assert extended.popularity.shape == (n + len(items),)
    assert extended.titles[n:] == [f"new {i}" for i in new_ids]
    assert dict(extended.from_text) == {n + k: "s1" for k in range(len(items))}
    assert (extended.extension, extended.revision) == (1, f"{model.version}+c1")
    expected = model.scorer.item_vectors_from_text([it.text for it in items])  # type: ignore[attr-defined]
    torch.testing.assert_close(extended.scorer.t["items"][n:], expected)
    torch.testing.assert_close(extended.scorer.t["items"][:n], table)
    # Copy-on-write: the object in-flight requests hold is unchanged.
    assert model.n_items == n and not model.from_text
    torch.testing.assert_close(model.scorer.t["items"], table)
    # Scoring covers the new columns; similar-items sees them too.
    state = extended.scorer.user_state(torch.tensor([0]), History.from_csr(extended.history, [0]))
    assert extended.scorer.score(state).shape == (1, n + len(items))
    assert extended.similar_scores(n).shape == (n + len(items),)


def test_extension_is_idempotent_refreshes_changed_text_and_skips_trained_items(
    store: ModelStore, data: TextRatings
) -> None:
    model = extend_model(_holder(store).get("convmf"), _items(data))
    assert extend_model(model, _items(data)) is model  # same stamps: nothing to do
    trained = model.item_ids[0]
    assert extend_model(model, [TextItem(trained, "x", "space rocket", "s9")]) is model

    first = data.held_out_ratings[0][1]
    index = model.item_index[first]
    other_topic_text = data.held_out[next(i for i in data.held_out if i != first)][1]
    changed = extend_model(model, [TextItem(first, "renamed", other_topic_text, "s2")])
    assert changed.n_items == model.n_items  # refreshed in place, no new row
    assert changed.from_text[index] == "s2" and changed.titles[index] == "renamed"
    expected = model.scorer.item_vectors_from_text([other_topic_text])[0]  # type: ignore[attr-defined]
    torch.testing.assert_close(changed.scorer.t["items"][index], expected)


def test_models_that_are_not_text_aware_are_left_unchanged(
    store: ModelStore, data: TextRatings
) -> None:
    pmf = _holder(store).get("pmf")
    assert extend_model(pmf, _items(data)) is pmf


# --------------------------------------------------------------------------- acceptance: cold start


def test_held_out_items_added_through_the_catalog_beat_the_global_mean(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    """Issue 5 acceptance (offline): items never trained on, placed from their text alone."""
    holder = _holder(store)
    holder.get("convmf")
    sync = CatalogSync(sessions, holder, interval_s=60)
    sync.start()
    try:
        save_items(sessions, [NewItem(i, None, text, {}) for i, (_, text) in data.held_out.items()])
        sync.sync_now()
        model = holder.get("convmf")
    finally:
        sync.stop()
    users = [model.user_index[u] for u, _, _ in data.held_out_ratings]
    items = torch.tensor([model.item_index[i] for _, i, _ in data.held_out_ratings])
    truth = np.array([r for _, _, r in data.held_out_ratings])
    assert all(int(i) in model.from_text for i in items)
    with torch.inference_mode():
        state = model.scorer.user_state(
            torch.tensor(users), History.from_csr(model.history, np.array(users))
        )
        predicted = model.scorer.predict(state)[torch.arange(len(users)), items].numpy()
    global_mean = float(data.train.ratings.mean())
    from_text, fallback = M.rmse(predicted, truth), M.rmse(np.full(len(truth), global_mean), truth)
    print(f"cold-item RMSE from text {from_text:.4f}, global mean {fallback:.4f}")
    assert from_text < 0.9 * fallback, (from_text, fallback)


# --------------------------------------------------------------------------- sync


def test_a_new_production_version_gets_the_catalog_on_load(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    holder = _holder(store)
    sync = CatalogSync(sessions, holder, interval_s=60)
    save_items(sessions, [NewItem(i, None, t, {}) for i, (_, t) in data.held_out.items()])
    sync.start()
    try:
        first = holder.get("convmf")
        assert len(first.from_text) == len(data.held_out)
        tiny = {**TINY_CONVMF, "epochs": 1, "cnn_epochs": 1}
        train_and_save(store, "convmf", data.train, tiny, source="text", promote=True)
        holder.poll_once()  # the hot swap
        second = holder.get("convmf")
    finally:
        sync.stop()
    assert second.version != first.version
    assert {second.item_ids[i] for i in second.from_text} == set(data.held_out)


def test_a_server_sees_items_added_through_another_process(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    here, there = _holder(store), _holder(store)
    here.get("convmf"), there.get("convmf")
    sync_here = CatalogSync(sessions, here, interval_s=60)
    sync_there = CatalogSync(sessions, there, interval_s=60)
    sync_here.start(), sync_there.start()
    try:
        item_id, (_, text) = next(iter(data.held_out.items()))
        save_items(sessions, [NewItem(item_id, "t", text, {})])
        sync_here.sync_now()
        assert item_id not in there.get("convmf").item_index  # not polled yet
        sync_there.sync_now()  # what its poll thread does every interval
        assert item_id in there.get("convmf").item_index

        # A transaction that commits late carries an updated_at older than rows already
        # read: the look-back window still picks it up.
        late_id, (_, late_text) = list(data.held_out.items())[1]
        with session_scope(sessions) as session:
            upsert_items(
                session,
                [NewItem(late_id, None, late_text, {})],
                datetime.now(UTC) - timedelta(seconds=5),
            )
        sync_there.sync_now()
        assert late_id in there.get("convmf").item_index
    finally:
        sync_here.stop(), sync_there.stop()


def test_an_extension_never_overwrites_a_version_swapped_in_meanwhile(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    holder = _holder(store)
    old = holder.get("convmf")
    extended = extend_model(old, _items(data))
    newer = extend_model(old, _items(data)[:1])
    assert holder.replace_if_current(old, newer)
    assert not holder.replace_if_current(old, extended)  # old is no longer current
    assert holder.get("convmf") is newer


def test_a_broken_catalog_read_keeps_serving(store: ModelStore, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/no-tables.db")  # never migrated
    holder = _holder(store)
    model = holder.get("convmf")
    sync = CatalogSync(make_sessionmaker(engine), holder, interval_s=60)
    sync.start()
    sync.stop()
    assert holder.get("convmf") is model
    engine.dispose()


def test_a_cached_user_state_is_refreshed_when_an_item_they_rated_enters_the_catalog(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    model = _holder(store).get("convmf")
    item_id, (topic, text) = next(iter(data.held_out.items()))
    user = f"u{topic:02d}"
    with session_scope(sessions) as session:  # rated before the model could know the item
        add_interactions(session, [NewInteraction(user, item_id, 5.0)])
    logs, cache = LogReader(sessions, DatabaseGuard(), Metrics()), MemoryCache(Metrics())
    before = user_context(model, user, logs, cache)  # cached without the rating
    extended = extend_model(model, [TextItem(item_id, None, text, "s1")])
    after = user_context(extended, user, logs, cache)
    fresh = user_context(extended, user, logs, MemoryCache(Metrics()))
    assert extended.item_index[item_id] in after.seen
    assert after.state is not None and before.state is not None and fresh.state is not None
    torch.testing.assert_close(after.state, fresh.state)
    assert not torch.allclose(after.state, before.state)


# --------------------------------------------------------------------------- import


def test_import_writes_all_records_and_reports_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/import.db"
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a", "title": "A", "text": "space rocket"}\n{"item_id": "b"}\n')
    records = read_catalog_file(path)
    assert import_records(url, records, str(path)) == {"created": 2, "updated": 0, "unchanged": 0}
    assert import_records(url, records, str(path)) == {"created": 0, "updated": 0, "unchanged": 2}
    engine = make_engine(url)
    row = read_item(make_sessionmaker(engine), "a")
    engine.dispose()
    assert row is not None and (row.title, row.text) == ("A", "space rocket")


def test_import_is_all_or_nothing_and_names_the_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/import.db"
    path = tmp_path / "items.csv"
    path.write_text("item_id,title\nok,fine\n" + "x" * 300 + ",too long\n")
    with pytest.raises(CatalogError, match=rf"{path}, line 3: item_id is 300 characters"):
        import_records(url, read_catalog_file(path), str(path))
    upgrade_database(url)
    engine = make_engine(url)
    assert read_item(make_sessionmaker(engine), "ok") is None
    engine.dispose()


def test_import_into_an_unreachable_database_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://genrec:s3cret@127.0.0.1:1/genrec"
    record = read_catalog_file(_one_item(tmp_path))
    with pytest.raises(CatalogError, match="cannot write the catalog to") as err:
        import_records(url, record, "items.csv", migrate=False)
    assert "s3cret" not in str(err.value)


def _one_item(tmp_path: Path) -> Path:
    path = tmp_path / "one.csv"
    path.write_text("item_id,text\n1,space\n")
    return path


# --------------------------------------------------------------------------- both backends


@pytest.fixture(params=["sqlite", "postgres"])
def any_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = (
        f"sqlite:///{tmp_path}/both.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    upgrade_database(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        session.execute(text("DELETE FROM items"))
    engine.dispose()


def test_catalog_rows_round_trip_on_both_backends(any_sessions: sessionmaker[Session]) -> None:
    first = save_items(any_sessions, [NewItem("7", "T", "plot", {"genres": ["Drama"]})])
    again = save_items(any_sessions, [NewItem("7", "T", "new plot", {"genres": ["Drama"]})])
    assert (first, again) == ({"7": "created"}, {"7": "updated"})
    row = read_item(any_sessions, "7")
    assert row is not None
    assert (row.text, row.attributes) == ("new plot", {"genres": ["Drama"]})
    assert row.updated_at > row.created_at and row.updated_at.tzinfo is not None


def test_genrec_items_import_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.core.config import get_settings

    url = f"sqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("GENREC_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        good = CliRunner().invoke(cli, ["items", "import", str(_one_item(tmp_path))])
        bad_file = tmp_path / "bad.jsonl"
        bad_file.write_text('{"item_id": "2", "txt": "typo"}\n')
        bad = CliRunner().invoke(cli, ["items", "import", str(bad_file)])
    finally:
        get_settings.cache_clear()
    assert good.exit_code == 0, good.output
    assert "imported 1 item(s)" in good.output and "1 new" in good.output
    assert bad.exit_code == 2
    assert f"{bad_file}, line 1: unknown key(s) txt" in bad.output.replace("\n", "")
    engine = make_engine(url)
    row = read_item(make_sessionmaker(engine), "1")
    engine.dispose()
    assert row is not None and row.text == "space"
