"""``genrec models delete NAME VERSION``: removes an unaliased version, refuses the
production one in one line (exit 2), and the next training gets a fresh number."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from models_store.backend import LocalDirectoryBackend


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


class _AtTheStore:
    """``action`` run in a thread named ``name`` while a test's own command is between two
    of its steps: ``start`` (called from a hook on that step) returns once the thread asks
    the store for a model's lock, where it waits for the command's (or, unlocked, once it
    has finished), so each race test interleaves the two without sleeps."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, name: str, what: str, action: Callable[[], None]
    ) -> None:
        self.name, self.what, self.action = name, what, action
        self.outcome: list[BaseException | None] = []  # what the action raised, or None
        self.reached = threading.Event()
        self.threads: list[threading.Thread] = []
        real_lock = LocalDirectoryBackend.lock

        def lock(backend: LocalDirectoryBackend, model: str, *, shared: bool = False) -> Any:
            if threading.current_thread().name == name:
                self.reached.set()
            return real_lock(backend, model, shared=shared)

        monkeypatch.setattr(LocalDirectoryBackend, "lock", lock)

    def _run(self) -> None:
        try:
            self.action()
            self.outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            self.outcome.append(exc)
        finally:
            self.reached.set()

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name=self.name)
        self.threads.append(thread)
        thread.start()
        assert self.reached.wait(120), f"{self.what} never reached the store"

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def test_an_experiment_created_between_the_check_and_the_delete_does_not_pin_a_deleted_version(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete checked the running experiment, then deleted: an experiment created in
    between (its own check saw the version) was left with a variant pinned to nothing.
    Both decide under the model's store lock now; an experiment created right after the
    delete's check waits for the delete, then is refused for the version it names.

    The creation starts in another thread right after the delete's check, and the check
    returns once the creation asks the store for the model's lock (or, unlocked, has
    finished): the interleaving, without sleeps."""
    import app.experiments.definitions as definitions
    from app.core.config import get_settings
    from app.core.db import command_sessions

    runner = CliRunner()
    _train(runner, env, "--promote")
    _train(runner, env)
    creation = _AtTheStore(
        monkeypatch, "creator", "the creation", lambda: _start_experiment(env, "raced", "2")
    )
    real_check = definitions.pinning_variant

    def check_then_create(*args: Any) -> tuple[str, str] | None:
        found = real_check(*args)
        creation.start()
        return found

    monkeypatch.setattr(definitions, "pinning_variant", check_then_create)

    deleted = runner.invoke(app, ["models", "delete", "popularity", "2"])
    creation.join()

    assert deleted.exit_code == 0, deleted.output
    assert not (env.parent / "store" / "popularity" / "versions" / "2").exists()
    assert len(creation.outcome) == 1
    refused = creation.outcome[0]
    assert isinstance(refused, definitions.InvalidExperiment), refused
    assert "variant 'b'" in str(refused) and "has no version 2" in str(refused)
    with command_sessions(get_settings().database_url, migrate=False) as sessions:
        assert definitions.list_all(sessions) == []


def test_a_delete_started_while_an_experiment_is_being_created_sees_it(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The other order: a delete that starts after the creation checked its versions,
    before it recorded the experiment, waits for the creation and is refused for the
    experiment's variant (it was not: its check ran before the insert)."""
    import typer

    import app.cli.models as models_cli
    import app.experiments.definitions as definitions
    from app.core.config import get_settings
    from models_store import ModelStore

    runner = CliRunner()
    _train(runner, env, "--promote")
    _train(runner, env)

    def delete() -> None:
        store = ModelStore(env.parent / "store")
        models_cli._delete_unless_an_experiment_pins(get_settings(), store, "popularity", "2")

    deletion = _AtTheStore(monkeypatch, "deleter", "the delete", delete)
    real_insert = definitions._insert

    def delete_then_insert(*args: Any) -> definitions.ExperimentDef:
        deletion.start()
        return real_insert(*args)

    monkeypatch.setattr(definitions, "_insert", delete_then_insert)

    _start_experiment(env, "raced", "2")
    deletion.join()

    assert len(deletion.outcome) == 1
    assert isinstance(deletion.outcome[0], typer.Exit) and deletion.outcome[0].exit_code == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "is variant 'b' of the running experiment 'raced'" in said, said
    assert (env.parent / "store" / "popularity" / "versions" / "2").is_dir()
