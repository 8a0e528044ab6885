"""Fixtures of the CLI tests: a private store and database, and a small clicks file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def cli_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the CLI's settings at a store and a SQLite log under ``tmp_path``."""
    from app.core.config import get_settings

    monkeypatch.setenv("GENREC_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("GENREC_DATABASE_URL", f"sqlite:///{tmp_path}/log.db")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def env(cli_settings: Path) -> Path:
    """30 users in two taste groups of 6 items each, rated and timestamped, as a CSV."""
    csv = cli_settings / "clicks.csv"
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(30):
        for i in range(6):
            item = (u % 2) * 6 + i
            rows.append(f"u{u},i{item},{3 + (i % 3)},{1_700_000_000 + u * 10 + i}")
    csv.write_text("\n".join(rows) + "\n")
    return csv


@pytest.fixture
def nan_weights_version(env: Path) -> str:
    """ease version 1 trained and promoted, and version 2: its copy with one NaN weight,
    re-signed (the checksums hold: what a writer without genrec's divergence check, or
    a hand edit, leaves). Returns "2"."""
    from safetensors.numpy import load_file, save_file
    from typer.testing import CliRunner

    from app.cli import app

    trained = CliRunner().invoke(app, ["train", "--model", "ease", "--data", str(env), "--promote"])
    assert trained.exit_code == 0, trained.output
    versions = env.parent / "store" / "ease" / "versions"
    shutil.copytree(versions / "1", versions / "2")
    tensors_path = versions / "2" / "tensors.safetensors"
    tensors = load_file(tensors_path)
    next(iter(tensors.values())).reshape(-1)[3] = float("nan")
    save_file(tensors, tensors_path)
    manifest_path = versions / "2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    blob = tensors_path.read_bytes()
    manifest["version"] = "2"
    manifest["files"][tensors_path.name] = {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    manifest_path.write_text(json.dumps(manifest))
    return "2"


class UnhandledSigterm(Exception):
    """SIGTERM reached the handler in place before the command: it did not install its own."""


@pytest.fixture
def sigterm() -> Iterator[Callable[..., Any]]:
    """A stand-in for a command's long step that sends SIGTERM to this process.

    The handler in place meanwhile raises ``UnhandledSigterm`` (which a test sees as the
    command's exception) instead of killing the test runner; a command that handles
    SIGTERM replaces it while it runs and must put it back (``handler_restored``).
    """

    def unhandled(signum: int, frame: object) -> None:
        raise UnhandledSigterm("the command left SIGTERM to the previous handler")

    def terminate(*args: object, **kwargs: object) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (the main) thread
        raise AssertionError("SIGTERM did not stop the command")

    previous = signal.signal(signal.SIGTERM, unhandled)
    terminate.handler = unhandled  # type: ignore[attr-defined]
    try:
        yield terminate
    finally:
        signal.signal(signal.SIGTERM, previous)
