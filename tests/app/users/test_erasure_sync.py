"""The erasure poll (``app.users.sync.ErasureSync``): a server that learns of an erasure
drops the user's cached states, those cached since an earlier erasure of theirs too."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.serving.erased import cache_key
from app.serving.state import user_context
from app.users import erase_users


def test_the_poll_forgets_the_users_cached_states(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    user_context(model, "u5", services.recommender.logs, services.cache)
    assert services.cache.get("u5", "mult-vae", "1") is not None
    erase_users(services.sessions, ["u5"])
    assert client.app.state.erasures.refresh() == 1  # type: ignore[attr-defined]
    assert services.cache.get("u5", "mult-vae", "1") is None
    assert "u5" in services.erased


def test_erasing_again_forgets_the_states_cached_since_the_first_erasure(
    client: TestClient,
) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    model = services.holder.get("mult-vae")
    sync = client.app.state.erasures  # type: ignore[attr-defined]
    erase_users(services.sessions, ["u7"])
    sync.refresh()
    first = services.erased.get("u7")
    assert (
        client.post("/v1/interactions", json={"user_id": "u7", "item_id": "4"}).status_code == 201
    )
    user_context(model, "u7", services.recommender.logs, services.cache)  # folded in, cached
    key = cache_key("u7", first)
    assert services.cache.get(key, "mult-vae", "1") is not None
    erase_users(services.sessions, ["u7"])
    assert sync.refresh() == 1
    assert services.cache.get(key, "mult-vae", "1") is None
