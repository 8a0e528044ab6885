"""``genrec models delete NAME VERSION``: removes an unaliased version, refuses the
production one in one line (exit 2), and the next training gets a fresh number."""

from __future__ import annotations

from pathlib import Path

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
