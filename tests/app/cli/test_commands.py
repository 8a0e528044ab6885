"""The genrec console script: commands work, mistakes are one clear line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app


def test_train_list_promote_rollback(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["train", "--model", "ease", "--data", str(env), "--promote"])
    assert first.exit_code == 0, first.output
    assert "saved ease version 1 (production)" in first.output
    second = runner.invoke(app, ["train", "--model", "ease", "--data", str(env), "--set", "l2=10"])
    assert second.exit_code == 0, second.output

    skipped = runner.invoke(
        app, ["train", "--model", "ease", "--data", str(env), "--promote", "--if-missing"]
    )
    assert skipped.exit_code == 0 and "already has production version 1" in skipped.output

    promoted = runner.invoke(app, ["models", "promote", "ease", "2"])
    assert promoted.exit_code == 0 and "production -> 2" in promoted.output
    listing = runner.invoke(app, ["models", "list"])
    assert listing.exit_code == 0 and "production" in listing.output
    rolled = runner.invoke(app, ["models", "rollback", "ease"])
    assert rolled.exit_code == 0 and "production -> 1" in rolled.output


def test_if_missing_trains_when_production_names_a_version_no_longer_stored(env: Path) -> None:
    """With the promoted version deleted, --if-missing said "already has production
    version 1; nothing to do", and servers had nothing to load."""
    import shutil

    runner = CliRunner()
    args = ["train", "--model", "popularity", "--data", str(env), "--promote", "--if-missing"]
    assert runner.invoke(app, args).exit_code == 0  # version 1, promoted
    assert runner.invoke(app, args[:-2]).exit_code == 0  # version 2, not promoted
    shutil.rmtree(env.parent / "store" / "popularity" / "versions" / "1")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "model 'popularity' has no version 1" in again.output
    assert "saved popularity version 3 (production)" in again.output
    assert runner.invoke(app, args).output.startswith("popularity already has production version 3")


@pytest.mark.parametrize(
    ("damaged_file", "content", "says"),
    [
        ("manifest.json", "garbage", "manifest.json"),
        ("item_ids.json", '["x"]', "item_ids.json has"),
    ],
)
def test_if_missing_trains_when_the_production_version_does_not_load(
    env: Path, damaged_file: str, content: str, says: str
) -> None:
    """A production version present but damaged (a corrupt manifest, a file that no longer
    matches its checksum) was "already has production version 1; nothing to do", and
    compose's init-model left the servers with nothing they could load."""
    runner = CliRunner()
    args = ["train", "--model", "popularity", "--data", str(env), "--promote", "--if-missing"]
    assert runner.invoke(app, args).exit_code == 0  # version 1, promoted
    (env.parent / "store" / "popularity" / "versions" / "1" / damaged_file).write_text(content)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    first = again.output.replace("\n", " ")
    assert first.startswith("production version 1 of popularity does not load ("), again.output
    assert says in first and "); training" in first, again.output
    assert "saved popularity version 2 (production)" in again.output
    assert runner.invoke(app, args).output.startswith("popularity already has production version 2")


def test_train_promote_that_cannot_promote_says_the_version_was_saved(env: Path) -> None:
    """The promotion's error was the only line: the operator never learnt that version 2
    existed, and running the command again saved a third."""
    runner = CliRunner()
    args = ["train", "--model", "popularity", "--data", str(env), "--promote"]
    assert runner.invoke(app, args).exit_code == 0
    (env.parent / "store" / "popularity" / "aliases" / "production.json").write_text("garbage")
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "error: saved popularity version 2, but did not promote it: alias file" in (
        refused.output
    )


def test_a_version_with_nan_weights_is_not_promoted(nan_weights_version: str) -> None:
    """Promote moved the alias to it (its checksums hold), and servers then refused it."""
    runner = CliRunner()
    result = runner.invoke(app, ["models", "promote", "ease", nan_weights_version])
    assert result.exit_code == 2, result.output
    assert "NaN or infinite values in" in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    listing = runner.invoke(app, ["models", "list", "ease"])
    assert listing.exit_code == 0
    production = [line for line in listing.output.splitlines() if "production" in line]
    assert len(production) == 1 and " 1 " in production[0]


def test_evaluate_prints_the_report_with_its_command(env: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            "popularity",
            "--data",
            str(env),
            "--protocol",
            "weak-generalization",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ndcg@5" in result.output
    assert "genrec evaluate --protocol weak-generalization --model popularity" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "nope", "--data", "x.csv"], "unknown model 'nope'"),
        (["train", "--model", "ease", "--data", "/no/such.csv"], "no such file"),
        (["train", "--model", "ease", "--data", "x.csv", "--set", "l2"], "--set expects key=value"),
        (
            ["evaluate", "--model", "ease", "--data", "x.csv", "--protocol", "nope"],
            "unknown protocol",
        ),
        (["models", "rollback", "ease"], "ease"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(env: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_models_promote_repairs_a_corrupt_alias_file(env: Path) -> None:
    """``genrec models promote`` over a corrupt alias file failed with "is unreadable" and
    nothing said how to get production back. It replaces the file, says so, and keeps
    the unreadable bytes beside it."""
    runner = CliRunner()
    args = ["train", "--model", "popularity", "--data", str(env)]
    assert runner.invoke(app, [*args, "--promote"]).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    alias_file = env.parent / "store" / "popularity" / "aliases" / "production.json"
    alias_file.write_text("garbage")
    promoted = runner.invoke(app, ["models", "promote", "popularity", "2"])
    assert promoted.exit_code == 0, promoted.output
    output = promoted.output.replace("\n", " ")
    assert f"popularity: alias file {alias_file} was unreadable: replaced, with no " in output
    assert "(the unreadable file is kept beside it as production.json.unreadable-" in output
    assert len(list(alias_file.parent.glob("production.json.unreadable-*"))) == 1
    assert promoted.output.rstrip().endswith("popularity: production -> 2")
    listing = runner.invoke(app, ["models", "list", "popularity"])
    assert listing.exit_code == 0 and "unreadable" not in listing.output, listing.output
