"""User-state rules: history values, merge order, seen set."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from app.serving.erased import ErasedUsers
from app.serving.state import history_value, merge_history


def _model(predicts_ratings: bool, rating_range: tuple[float, float] = (1.0, 5.0)):  # type: ignore[no-untyped-def]
    return SimpleNamespace(predicts_ratings=predicts_ratings, rating_range=rating_range)


def test_click_without_rating() -> None:
    assert history_value(_model(False), None) == 5.0  # positive signal for a ranking model
    assert history_value(_model(False, (0.0, 1.0)), None) == 1.0
    assert history_value(_model(True), None) is None  # no made-up rating for a rating model
    assert history_value(_model(True), 2.0) == 2.0


def test_later_events_win_and_clicks_only_mark_seen_for_rating_models() -> None:
    items, values, seen = merge_history(
        _model(True), [3, 7], [4.0, 2.0], [(7, 5.0), (9, None), (7, 1.0)]
    )
    assert dict(zip(items, values, strict=True)) == {3: 4.0, 7: 1.0}
    assert sorted(seen.tolist()) == [3, 7, 9]
    items, values, _ = merge_history(_model(False), np.array([], dtype=np.int64), [], [(9, None)])
    assert (items, values) == ([9], [5.0])


def test_without_events_the_training_row_is_the_history_and_the_seen_set() -> None:
    base = np.array([5, 2, 9], dtype=np.int64)
    items, values, seen = merge_history(_model(True), base, np.array([1.0, 3.0, 5.0]), [])
    assert (items, values) == ([5, 2, 9], [1.0, 3.0, 5.0])
    assert seen.tolist() == [5, 2, 9]
    # The same answer as the general path gives when an event repeats a training item.
    again = merge_history(_model(True), base, [1.0, 3.0, 5.0], [(2, 3.0)])
    assert dict(zip(again[0], again[1], strict=True)) == dict(zip(items, values, strict=True))


class _DownLog:
    """A LogReader whose database is unreachable."""

    erased = ErasedUsers()

    def read(self, user_id: str, after: object) -> None:
        return None


def test_database_down_uses_cached_state_as_is_and_writes_nothing(client) -> None:  # type: ignore[no-untyped-def]
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_context

    model = client.app.state.services.holder.get("mult-vae")
    cache = MemoryCache(Metrics())
    known = user_context(model, "u2", _DownLog(), cache)  # type: ignore[arg-type]
    assert known.degraded and known.state is not None and not known.folded_in
    assert set(known.seen.tolist()) == set(model.training_row(model.user_index["u2"])[0].tolist())
    assert cache.get("u2", "mult-vae", "1") is None  # computed without the log: not cached
    cached = np.arange(known.state.shape[1], dtype=np.float32)
    cache.set("stranger", "mult-vae", "1", cached, stamp=7)
    stranger = user_context(model, "stranger", _DownLog(), cache)  # type: ignore[arg-type]
    assert stranger.degraded and stranger.state is not None
    assert stranger.state[0].tolist() == cached.tolist()
    nobody = user_context(model, "nobody", _DownLog(), cache)  # type: ignore[arg-type]
    assert nobody.degraded and nobody.state is None  # -> popularity fallback


def test_database_down_takes_the_newest_cached_state_of_the_tiers(client) -> None:  # type: ignore[no-untyped-def]
    """Degraded reads ask the cache for its newest entry (``get_newest``: the larger stamp of
    memory and Redis), not the memory-first ``get`` the stamp check makes safe."""
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_context

    class TwoCopies(MemoryCache):
        """An older copy where ``get`` looks first, a newer one ``get_newest`` finds."""

        def get_newest(self, user_id: str, model: str, version: str):  # type: ignore[no-untyped-def]
            entry = self.get(user_id, model, version)
            return None if entry is None else (entry[0] + 1.0, entry[1] + 1)

    model = client.app.state.services.holder.get("mult-vae")
    cache = TwoCopies(Metrics())
    width = user_context(model, "u2", _DownLog(), cache).state.shape[1]  # type: ignore[arg-type,union-attr]
    held = np.zeros(width, dtype=np.float32)
    cache.set("stranger", "mult-vae", "1", held, stamp=7)
    stranger = user_context(model, "stranger", _DownLog(), cache)  # type: ignore[arg-type]
    assert stranger.degraded and stranger.state is not None
    assert stranger.state[0].tolist() == (held + 1.0).tolist()


def test_batched_contexts_equal_one_by_one(client) -> None:  # type: ignore[no-untyped-def]
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_context, user_contexts

    services = client.app.state.services
    client.post("/v1/interactions", json={"user_id": "u4", "item_id": "7", "rating": 5})
    client.post("/v1/interactions", json={"user_id": "fresh", "item_id": "3"})
    model = services.holder.get("mult-vae")
    logs = services.recommender.logs
    users = ["u1", "u4", "fresh", "nobody", "u1"]  # known, known + log, unknown + log, nothing
    batched = user_contexts(model, users, logs, MemoryCache(Metrics()))
    single = [user_context(model, u, logs, MemoryCache(Metrics())) for u in users]
    for b, s in zip(batched, single, strict=True):
        assert (b.folded_in, b.degraded) == (s.folded_in, s.degraded)
        assert sorted(b.seen.tolist()) == sorted(s.seen.tolist())
        if s.state is None:
            assert b.state is None
        else:
            assert b.state is not None and np.allclose(b.state.numpy(), s.state.numpy(), atol=1e-5)
    assert [b.state is None for b in batched] == [False, False, False, True, False]
    cache = MemoryCache(Metrics())
    user_contexts(model, users, logs, cache)
    again = user_contexts(model, users, logs, cache)  # second time from the cache
    assert np.allclose(again[1].state.numpy(), batched[1].state.numpy(), atol=1e-5)
    assert cache.get("u4", "mult-vae", "1")[1] > 0  # stamped with the logged row's id


def test_users_who_cannot_have_a_state_are_not_looked_up_in_the_cache(client) -> None:  # type: ignore[no-untyped-def]
    """A user unknown to the artifact with nothing usable logged gets the fallback without a
    cache lookup (with Redis, a round trip for a certain miss); the others are looked up."""
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_contexts

    services = client.app.state.services
    client.post("/v1/interactions", json={"user_id": "logged", "item_id": "3"})
    client.post("/v1/interactions", json={"user_id": "only-unknown", "item_id": "no-such"})
    model = services.holder.get("mult-vae")
    cache = MemoryCache(Metrics())
    asked: list[list[str]] = []
    real = cache.get_many
    cache.get_many = lambda ids, *rest: asked.append(list(ids)) or real(ids, *rest)  # type: ignore[method-assign]
    users = ["u1", "visitor", "logged", "only-unknown"]
    contexts = user_contexts(model, users, services.recommender.logs, cache)
    assert asked == [["u1", "logged"]]
    assert [c.state is None for c in contexts] == [False, True, False, True]
    assert contexts[3].seen.size == 0  # an item the model does not know is not "seen"
    asked.clear()
    assert user_contexts(model, ["visitor"], services.recommender.logs, cache)[0].state is None
    assert asked == []  # nobody to look up: no call at all


def test_batched_ad_hoc_contexts_equal_one_fold_in_each(client) -> None:  # type: ignore[no-untyped-def]
    """The batch's one ``user_state`` call for several anonymous histories gives each the
    state its own fold-in gives; unknown ids are listed once, in order, and ignored."""
    from app.serving.state import ad_hoc_contexts, ad_hoc_events, compute_state

    model = client.app.state.services.holder.get("mult-vae")
    histories = [
        [("1", None), ("2", 4.0), ("nope", None), ("1", None), ("nope", 2.0)],
        [("missing", None)],  # nothing the model knows: the popularity fallback
        [("3", None), ("4", None), ("5", None)],
    ]
    parsed = [ad_hoc_events(model, h) for h in histories]
    assert [unknown for _, unknown in parsed] == [["nope"], ["missing"], []]
    contexts = ad_hoc_contexts(model, [events for events, _ in parsed])
    assert [c.state is None for c in contexts] == [False, True, False]
    assert [c.folded_in for c in contexts] == [True, False, True]
    for (events, _), context in zip(parsed, contexts, strict=True):
        items, values, seen = merge_history(model, [], [], events)
        assert sorted(context.seen.tolist()) == sorted(seen.tolist())
        if items:
            alone = compute_state(model, -1, items, values)
            assert context.state is not None
            assert np.allclose(context.state.numpy(), alone.numpy(), atol=1e-5)


def test_a_row_committed_after_a_newer_one_changes_the_stamp() -> None:
    """Postgres draws ids at insert, not at commit: a reader can see id 11 before id 10
    (two replicas writing). The stamp then differs although the newest id is the same, so a
    state cached without row 10 is not used once row 10 is visible."""
    from datetime import UTC, datetime

    from app.repository import LoggedInteraction
    from app.serving.state import log_stamp

    def row(id_: int) -> LoggedInteraction:
        return LoggedInteraction(id_, "1", None, datetime.now(UTC))

    assert log_stamp([]) == 0
    assert log_stamp([row(11)]) != log_stamp([row(10), row(11)])
    assert log_stamp([row(3)]) < log_stamp([row(3), row(7)])  # more rows, newer: larger


def test_rows_of_items_the_model_does_not_know_leave_a_known_user_trained(client) -> None:  # type: ignore[no-untyped-def]
    """Such rows do not count in the stamp, so they must not make a refold either: the
    trained and the refolded state both carried stamp 0, and two replicas each kept the one
    they had cached first (different lists for the same user and version, indefinitely)."""
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_context, user_contexts

    services = client.app.state.services
    model = services.holder.get("biased-mf")  # trained user vectors: a refold differs
    logs = services.recommender.logs
    trained = user_context(model, "u3", logs, MemoryCache(Metrics()))
    written = {"user_id": "u3", "item_id": "not-in-the-model", "type": "purchase"}
    assert client.post("/v1/interactions", json=written).status_code == 201
    for after in (
        user_context(model, "u3", logs, MemoryCache(Metrics())),
        user_contexts(model, ["u3"], logs, MemoryCache(Metrics()))[0],
    ):
        assert not after.folded_in
        assert after.state is not None and trained.state is not None
        torch.testing.assert_close(after.state, trained.state)


def test_a_dislike_marks_its_item_seen_and_is_never_feedback(client) -> None:  # type: ignore[no-untyped-def]
    """Retraining leaves out events of weight <= 0; folded in, an unrated dislike read as
    the top of the rating range, so a user who disliked an item got a liker's list."""
    from app.core.cache import MemoryCache
    from app.core.metrics import Metrics
    from app.serving.state import user_context, user_contexts

    services = client.app.state.services
    model = services.holder.get("mult-vae")
    logs = services.recommender.logs
    rows = [
        {"user_id": "disliker", "item_id": "7", "type": "dislike"},
        {"user_id": "liker", "item_id": "7", "type": "like"},
    ]
    assert client.post("/v1/interactions", json={"interactions": rows}).status_code == 201
    for context in (
        user_context(model, "disliker", logs, MemoryCache(Metrics())),
        user_contexts(model, ["disliker"], logs, MemoryCache(Metrics()))[0],
    ):
        assert context.state is None  # nothing to fold in: the popularity fallback
        assert context.seen.tolist() == [model.item_index["7"]]  # but never recommended
    assert user_context(model, "liker", logs, MemoryCache(Metrics())).state is not None
    answer = client.get("/v1/users/disliker/recommendations", params={"k": 5}).json()
    assert "7" not in {item["item_id"] for item in answer["items"]}
