"""Settings that ``training`` reads from the environment itself reach it from ``.env``.

``GENREC_DATASET_BASE_URL`` and ``GENREC_KEEP_FREED_MEMORY`` were read from
``os.environ`` only, so a ``.env`` beside the command (which only ``Settings``
reads) was ignored for them; the CLI now writes them into its environment.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.config import get_settings


@pytest.fixture
def dotenv_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory, no GENREC_* variable in the environment."""
    for key in list(os.environ):
        if key.startswith("GENREC_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    for key in list(os.environ):
        if key.startswith("GENREC_"):
            os.environ.pop(key)  # what the command wrote (monkeypatch restores the rest)


def test_a_mirror_and_a_cache_set_in_dotenv_are_the_ones_a_download_uses(
    dotenv_dir: Path,
) -> None:
    (dotenv_dir / ".env").write_text(
        "GENREC_DATASET_BASE_URL=http://127.0.0.1:1/mirror\n"
        f"GENREC_CACHE_DIR={dotenv_dir / 'cache'}\n"
        f"GENREC_STORE_DIR={dotenv_dir / 'store'}\n"
    )
    result = CliRunner().invoke(
        app, ["train", "--model", "popularity", "--data", "ml-latest-small"]
    )
    assert result.exit_code == 2, result.output
    assert "http://127.0.0.1:1/mirror/ml-latest-small.zip" in result.output, result.output
    assert f"downloaded into {dotenv_dir / 'cache'}" in result.output, result.output


def test_keep_freed_memory_set_in_dotenv_reaches_the_allocator(dotenv_dir: Path) -> None:
    (dotenv_dir / ".env").write_text("GENREC_KEEP_FREED_MEMORY=off\n")
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert os.environ["GENREC_KEEP_FREED_MEMORY"] == "0"  # what training/allocator.py reads
    assert "GENREC_DATASET_BASE_URL" not in os.environ  # only what was set is written


def test_a_protocol_on_the_log_reads_the_database_set_in_dotenv(dotenv_dir: Path) -> None:
    """``genrec train --data db`` reads the configured database (``.env`` included); a
    protocol's ``--data db`` read ``GENREC_DATABASE_URL`` from the process environment
    only, so with the URL in ``.env`` it refused: "data spec 'db' needs a database URL"."""
    from tests.app.cli.test_train_mixed_log import _log_ratings_and_clicks

    _log_ratings_and_clicks(dotenv_dir)
    (dotenv_dir / ".env").write_text(
        f"GENREC_DATABASE_URL=sqlite:///{dotenv_dir}/log.db\n"
        f"GENREC_STORE_DIR={dotenv_dir / 'store'}\n"
    )
    command = ["evaluate", "--model", "biased-mf", "--protocol", "ratings-random"]
    result = CliRunner().invoke(app, [*command, "--data", "db", "--set", "epochs=2"])
    assert result.exit_code == 0, result.output
    assert "ratings-random" in result.output and "rmse" in result.output
