"""Model holder: hot swap without restart, refusal of broken versions, late default model."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.serving.holder import resolve_device
from models_store import ModelStore

#: /readyz names a refused version and why only to the admin token.
AUTH = {"Authorization": "Bearer t"}


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _version(client: TestClient) -> str:
    return str(client.get("/v1/users/u1/recommendations", params={"k": 3}).json()["version"])


def test_promoted_version_is_picked_up_without_restart(
    client: TestClient, store_dir: Path, train: Callable[..., str]
) -> None:
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    assert _version(client) == "1"
    in_flight = holder.get("mult-vae")  # what a request that started now holds
    assert train(ModelStore(store_dir), "mult-vae", seed=1) == "2"  # promoted
    _wait_for(lambda: _version(client) == "2")
    # The old object stays intact for requests that still hold it.
    assert in_flight.version == "1"
    state = in_flight.scorer.user_state(torch.tensor([-1]), _one_item_history(in_flight))
    assert in_flight.scorer.score(state).shape == (1, in_flight.n_items)
    metrics = client.get("/metrics").text
    assert 'genrec_model_loaded{model="mult-vae",version="2"} 1.0' in metrics
    assert 'version="1"' not in metrics.split("genrec_model_loaded")[-1]
    ModelStore(store_dir).rollback("mult-vae")
    _wait_for(lambda: _version(client) == "1")


def _one_item_history(model):  # type: ignore[no-untyped-def]
    from training.models.base import History

    return History.from_lists([[0]], None, model.n_items)


def _corrupt_tensors(version_dir: Path) -> None:
    path = version_dir / "tensors.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def _unknown_format(version_dir: Path) -> None:
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))


def _rewrite_tensors(version_dir: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Change the tensors file and re-sign it in the manifest: the checksums hold, the
    contents do not fit the scorer (what a buggy build or a hand edit leaves behind)."""
    from safetensors.torch import load_file, save_file

    path = version_dir / "tensors.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)
    manifest_path = version_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    blob = path.read_bytes()
    manifest["files"]["tensors.safetensors"] = {
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest))


def _damaged_retrieval(version_dir: Path) -> None:
    """The index's parameters, which no checksum covers, edited: it was served as is."""
    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["retrieval"]["nlist"] = -3
    path.write_text(json.dumps(manifest))


def _narrow_a_matrix(version_dir: Path) -> None:
    def narrow(tensors: dict[str, torch.Tensor]) -> None:
        tensors["dec_hidden_w"] = tensors["dec_hidden_w"][:, :-5].contiguous()

    _rewrite_tensors(version_dir, narrow)


def _wrong_dtype(version_dir: Path) -> None:
    def widen(tensors: dict[str, torch.Tensor]) -> None:
        tensors["enc_in_w"] = tensors["enc_in_w"].double()

    _rewrite_tensors(version_dir, widen)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_corrupt_tensors, "sha256"),
        (_unknown_format, "format_version"),
        (_damaged_retrieval, "retrieval.nlist must be a positive integer, got -3"),
        (_narrow_a_matrix, "cannot serve it"),
        (_wrong_dtype, "version 2"),
    ],
)
def test_broken_version_is_refused_and_the_old_one_keeps_serving(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    train: Callable[..., str],
    damage: Callable[[Path], None],
    expected: str,
) -> None:
    client = make_client(reload_interval_s=3600, admin_token="t")  # the test drives polling
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    store = ModelStore(store_dir)
    train(store, "mult-vae", seed=1)  # version 2, promoted
    damage(store_dir / "mult-vae" / "versions" / "2")
    holder.poll_once()
    assert _version(client) == "1"
    ready = client.get("/readyz", headers=AUTH).json()
    assert ready["ready"] is True  # still serving version 1
    error = ready["models"]["mult-vae"]["error"]
    assert "version 2" in error and expected in error
    assert 'genrec_model_load_errors_total{model="mult-vae"} 1.0' in client.get("/metrics").text
    holder.poll_once()  # a refused version is not re-read on every poll
    assert 'genrec_model_load_errors_total{model="mult-vae"} 1.0' in client.get("/metrics").text


def test_a_server_started_on_a_version_that_cannot_score_starts_unready_with_the_reason(
    make_client: Callable[..., TestClient], store_dir: Path
) -> None:
    """It failed to start at all ("Application startup failed", exit 3)."""
    _narrow_a_matrix(store_dir / "mult-vae" / "versions" / "1")
    client = make_client(admin_token="t")
    ready = client.get("/readyz", headers=AUTH)
    assert ready.status_code == 503
    assert "version 1 refused" in ready.json()["models"]["mult-vae"]["error"]
    assert "cannot serve it" in ready.json()["models"]["mult-vae"]["error"]


def test_default_model_published_after_startup_is_loaded(
    make_client: Callable[..., TestClient], tmp_path: Path, train: Callable[..., str]
) -> None:
    empty = tmp_path / "late-store"
    client = make_client(store_dir=empty)
    assert client.get("/readyz").status_code == 503
    assert client.get("/v1/users/u1/recommendations").status_code == 404
    train(ModelStore(empty), "mult-vae")
    _wait_for(lambda: client.get("/readyz").status_code == 200)
    assert _version(client) == "1"


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def test_model_that_fails_its_first_load_answers_503_with_the_reason(
    client: TestClient, store_dir: Path
) -> None:
    _corrupt_tensors(store_dir / "biased-mf" / "versions" / "1")
    for _ in range(2):  # the second answer comes from the recorded failure
        r = client.get("/v1/users/u1/recommendations", params={"model": "biased-mf"})
        assert r.status_code == 503
        assert "biased-mf version 1 refused" in r.json()["message"]
    assert client.get("/v1/users/u1/recommendations").status_code == 200  # others unaffected


def test_a_version_with_a_nan_in_a_user_row_is_refused_not_served(
    client: TestClient, store_dir: Path
) -> None:
    """The smoke test scores one folded-in user, who never reads a stored user's row: the
    version was served, and that user's scores were NaN. The store refuses it on load,
    as promote and ``genrec evaluate`` do."""

    def spoil(tensors: dict[str, torch.Tensor]) -> None:
        tensors["user_factors"][1, 0] = float("nan")

    _rewrite_tensors(store_dir / "biased-mf" / "versions" / "1", spoil)
    r = client.get("/v1/users/u1/recommendations", params={"model": "biased-mf"})
    assert r.status_code == 503, r.text
    assert "biased-mf version 1 refused" in r.json()["message"]
    assert "NaN or infinite values in user_factors" in r.json()["message"]


def test_a_served_version_whose_files_change_is_loaded_again(
    make_client: Callable[..., TestClient], store_dir: Path
) -> None:
    # `genrec models index` adds index files to a published version: the servers that
    # already serve it open them on their next poll, without a restart or a promotion.
    client = make_client(ann="on")
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    first = holder.get("mult-vae")
    assert first.ann is not None and first.similar_ann is not None
    from training.ann import index_version

    index_version(ModelStore(store_dir), "mult-vae", "1", nprobe=1, similar_nprobe=1)
    _wait_for(lambda: holder.get("mult-vae") is not first)
    again = holder.get("mult-vae")
    assert again.version == "1" and again.ann is not None and again.ann.nprobe == 1
    assert again.similar_ann is not None
    holder.poll_once()  # nothing changed since: the same object stays
    assert holder.get("mult-vae") is again


def test_a_rebuild_waits_for_the_load_listeners_that_open_the_index(
    make_client: Callable[..., TestClient], store_dir: Path, train: Callable[..., str]
) -> None:
    # The retrieval listener opens a version's index files by path after the store read
    # its manifest. A rebuild that swapped the files in between had them opened with the
    # old manifest's parameters; now the listeners run under the store's shared lock, so
    # a rebuild started meanwhile waits for them.
    from training.ann import index_version

    client = make_client(ann="on")
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    store = ModelStore(store_dir)
    rebuilds: list[threading.Thread] = []
    waited: list[bool] = []

    def rebuild_while_opening(model):  # type: ignore[no-untyped-def]
        if model.version == "2" and not rebuilds:
            rebuild = threading.Thread(
                target=index_version, args=(store, "mult-vae", "2"), kwargs={"nprobe": 1}
            )
            rebuild.start()  # before the test's thread can see it and join it
            rebuilds.append(rebuild)
            rebuild.join(2.0)  # a rebuild of this tiny version takes a fraction of that
            waited.append(rebuild.is_alive())
        return model

    holder.add_load_listener(rebuild_while_opening)
    assert train(store, "mult-vae", seed=1) == "2"  # promoted: the poll loads it
    _wait_for(lambda: bool(rebuilds))
    rebuilds[0].join(30)
    assert waited == [True]  # the rebuild could not replace the files during the listener
    # Then the rebuilt files are noticed and loaded, with the index they hold.
    _wait_for(lambda: (m := holder.get("mult-vae")).ann is not None and m.ann.nprobe == 1)
    assert holder.status()["mult-vae"]["error"] is None


def test_a_rebuild_of_the_served_version_is_waited_for_and_loaded_once(
    make_client: Callable[..., TestClient],
    store_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # `genrec models index` on the served version, held after its index files replaced
    # the old ones and before the manifest lists them (seconds, at a million items):
    # the servers' polls see the files change meanwhile. They must neither refuse the
    # version they serve (an error log and a load-error count per poll) nor load it
    # more than once: the store's lock makes them wait for the rebuild.
    from training.ann import index_version

    client = make_client(ann="on")
    holder = client.app.state.services.holder  # type: ignore[attr-defined]
    first = holder.get("mult-vae")
    loads: list[str] = []
    holder.add_load_listener(lambda model: loads.append(model.name) or model)
    store = ModelStore(store_dir)
    writing_manifest, release = threading.Event(), threading.Event()
    replace = store.backend.replace

    def held_before_the_manifest(key: str, data: bytes) -> None:
        if key.endswith("manifest.json"):
            writing_manifest.set()
            release.wait(30)
        replace(key, data)

    monkeypatch.setattr(store.backend, "replace", held_before_the_manifest)
    rebuild = threading.Thread(
        target=index_version, args=(store, "mult-vae", "1"), kwargs={"nprobe": 1}
    )
    rebuild.start()
    assert writing_manifest.wait(30)
    time.sleep(0.5)  # ten polls, while the version's files do not match its manifest
    assert holder.get("mult-vae") is first
    assert holder.status()["mult-vae"]["error"] is None
    release.set()
    rebuild.join(30)
    _wait_for(lambda: holder.get("mult-vae") is not first)
    again = holder.get("mult-vae")
    assert again.ann is not None and again.ann.nprobe == 1  # the rebuilt index
    time.sleep(0.5)  # ten more polls
    assert holder.get("mult-vae") is again and loads.count("mult-vae") == 1
    assert holder.status()["mult-vae"]["error"] is None
    samples = client.get("/metrics").text
    assert 'genrec_model_load_errors_total{model="mult-vae"}' not in samples
    said = [r.getMessage() for r in caplog.records if "its files changed" in r.getMessage()]
    assert said == ["mult-vae version 1: its files changed; loading it again"]  # once a reload
