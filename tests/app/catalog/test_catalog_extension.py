"""Growing a loaded model with catalog items (``app.catalog.extension``): copy on write.

The tiny ConvMF of ``conftest.py`` never saw the held-out items; they enter
only through the catalog, as items added after training do.
"""

from __future__ import annotations

import torch
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.catalog.extension import TextItem, extend_model
from app.core.cache import MemoryCache
from app.core.db import DatabaseGuard, session_scope
from app.core.metrics import Metrics
from app.repository import NewInteraction, add_interactions
from app.serving.state import LogReader, user_context
from models_store import ModelStore
from tests.app.catalog.support import cpu_holder, held_out_items
from tests.app.catalog_data import TextRatings
from training.models.base import History

# --------------------------------------------------------------------------- extension


def test_extension_appends_rows_from_text_and_leaves_the_old_model_alone(
    store: ModelStore, data: TextRatings
) -> None:
    model = cpu_holder(store).get("convmf")
    n, table = model.n_items, model.scorer.t["items"].clone()
    items = held_out_items(data)
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
    model = extend_model(cpu_holder(store).get("convmf"), held_out_items(data))
    assert extend_model(model, held_out_items(data)) is model  # same stamps: nothing to do
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
    pmf = cpu_holder(store).get("pmf")
    assert extend_model(pmf, held_out_items(data)) is pmf


def test_an_extension_never_overwrites_a_version_swapped_in_meanwhile(
    store: ModelStore, data: TextRatings, sessions: sessionmaker[Session]
) -> None:
    holder = cpu_holder(store)
    old = holder.get("convmf")
    extended = extend_model(old, held_out_items(data))
    newer = extend_model(old, held_out_items(data)[:1])
    assert holder.replace_if_current(old, newer)
    assert not holder.replace_if_current(old, extended)  # old is no longer current
    assert holder.get("convmf") is newer


def test_a_cached_user_state_is_refreshed_when_an_item_they_rated_enters_the_catalog(
    store: ModelStore, data: TextRatings, engine: Engine, sessions: sessionmaker[Session]
) -> None:
    model = cpu_holder(store).get("convmf")
    item_id, (topic, text) = next(iter(data.held_out.items()))
    user = f"u{topic:02d}"
    with session_scope(sessions) as session:  # rated before the model could know the item
        add_interactions(session, [NewInteraction(user, item_id, 5.0)])
    logs, cache = LogReader(engine, DatabaseGuard(), Metrics()), MemoryCache(Metrics())
    before = user_context(model, user, logs, cache)  # cached without the rating
    extended = extend_model(model, [TextItem(item_id, None, text, "s1")])
    after = user_context(extended, user, logs, cache)
    fresh = user_context(extended, user, logs, MemoryCache(Metrics()))
    assert extended.item_index[item_id] in after.seen
    assert after.state is not None and before.state is not None and fresh.state is not None
    torch.testing.assert_close(after.state, fresh.state)
    assert not torch.allclose(after.state, before.state)
