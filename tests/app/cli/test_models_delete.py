"""``genrec models delete NAME VERSION``: removes an unaliased version, refuses the
production one in one line (exit 2), and the next training gets a fresh number."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app


def _train(runner: CliRunner, env: Path, *extra: str) -> None:
    result = runner.invoke(app, ["train", "--model", "popularity", "--data", str(env), *extra])
    assert result.exit_code == 0, result.output


def test_delete_removes_a_version_and_its_number_is_not_given_again(env: Path) -> None:
    runner = CliRunner()
    _train(runner, env, "--promote")
    _train(runner, env)
    _train(runner, env)
    assert runner.invoke(app, ["models", "promote", "popularity", "2"]).exit_code == 0

    old = runner.invoke(app, ["models", "delete", "popularity", "1"])
    assert old.exit_code == 0, old.output
    assert "popularity: deleted version 1" in old.output
    assert "version 1 removed from production's rollback history" in old.output
    newest = runner.invoke(app, ["models", "delete", "popularity", "3"])
    assert newest.exit_code == 0 and "rollback history" not in newest.output

    listing = runner.invoke(app, ["models", "list", "popularity"])
    assert listing.exit_code == 0, listing.output
    assert "production" in listing.output and "is not in the store" not in listing.output
    rolled = runner.invoke(app, ["models", "rollback", "popularity"])
    assert rolled.exit_code == 2 and "has no previous version" in rolled.output
    again = runner.invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert again.exit_code == 0 and "saved popularity version 4" in again.output


def test_deleting_the_production_version_is_one_line_and_exit_2(env: Path) -> None:
    runner = CliRunner()
    _train(runner, env, "--promote")
    for args, says in (
        (["popularity", "1"], "version 1 of model 'popularity' is what alias production"),
        (["popularity", "7"], "has no version 7"),
        (["nope", "1"], "model 'nope' has no versions"),
        (["popularity", "x"], "invalid version 'x'"),
    ):
        result = runner.invoke(app, ["models", "delete", *args])
        assert result.exit_code == 2, result.output
        assert says in result.output and "Traceback" not in result.output
    listing = runner.invoke(app, ["models", "list", "popularity"])
    assert "production" in listing.output


def _start_experiment(env: Path, name: str, pinned: str) -> None:
    """A running experiment: control on production, a variant pinned to ``pinned``."""
    from app.core.config import get_settings
    from app.core.db import command_sessions
    from app.experiments.definitions import Variant, create
    from models_store import ModelStore

    variants = [
        Variant("control", "popularity", None, 1.0),
        Variant("b", "popularity", pinned, 1.0),
    ]
    with command_sessions(get_settings().database_url, migrate=True) as sessions:
        create(sessions, ModelStore(env.parent / "store"), name, variants, None, 30.0, 0.01)


def test_a_version_a_running_experiment_pins_is_not_deleted(env: Path) -> None:
    """Deleting it left the experiment's variant with nothing to load; a stopped
    experiment's results come from its impressions, so its versions may go."""
    from app.core.config import get_settings
    from app.core.db import command_sessions
    from app.experiments.definitions import stop

    runner = CliRunner()
    _train(runner, env, "--promote")
    _train(runner, env)
    _start_experiment(env, "spring-test", "2")

    refused = runner.invoke(app, ["models", "delete", "popularity", "2"])
    assert refused.exit_code == 2, refused.output
    assert refused.output.strip().splitlines() == [
        "error: version 2 of model 'popularity' is variant 'b' of the running experiment "
        "'spring-test'; stop the experiment first (POST /admin/experiments/spring-test/stop)"
    ]
    assert (env.parent / "store" / "popularity" / "versions" / "2").is_dir()

    with command_sessions(get_settings().database_url, migrate=False) as sessions:
        stop(sessions, "spring-test")
    deleted = runner.invoke(app, ["models", "delete", "popularity", "2"])
    assert deleted.exit_code == 0, deleted.output


def test_delete_is_refused_when_the_experiments_cannot_be_read(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchecked, the delete could break a running experiment: it is refused, naming
    the database (without its password), and nothing is deleted."""
    from app.core.config import get_settings

    runner = CliRunner()
    _train(runner, env, "--promote")
    _train(runner, env)
    monkeypatch.setenv("GENREC_DATABASE_URL", "postgresql://root:secret@127.0.0.1:1/nope")
    get_settings.cache_clear()
    refused = runner.invoke(app, ["models", "delete", "popularity", "2"])
    assert refused.exit_code == 2, refused.output
    lines = refused.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: cannot check whether a running experiment uses version 2 of model "
        "'popularity' (postgresql+psycopg://root:***@127.0.0.1:1/nope: "
    ), refused.output
    assert lines[0].endswith("); nothing was deleted"), refused.output
    assert "secret" not in refused.output
    assert (env.parent / "store" / "popularity" / "versions" / "2").is_dir()
