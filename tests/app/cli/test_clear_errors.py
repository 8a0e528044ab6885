"""Bad settings, options, paths and store layouts end in one clear line and exit code 2.

Each case used to end in a traceback (pydantic's, uvicorn's, rich's markup
parser's, an ``OSError``'s, torchrun's), or, for ``--json``, only after the
whole evaluation had run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app


def _refused(args: list[str], *expected: str) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for text in expected:
        assert text in result.output, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture
def no_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` must refuse before starting the server: starting it fails the test."""
    import uvicorn

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("uvicorn.run was called")

    monkeypatch.setattr(uvicorn, "run", started)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GENREC_DEVICE", "tpu", "GENREC_DEVICE: Input should be 'cpu', 'cuda' or 'auto'"),
        ("GENREC_MAX_K", "-1", "GENREC_MAX_K: Input should be greater than 0 (got '-1')"),
        (
            "GENREC_JOB_POLL_INTERVAL_S",
            "inf",
            "GENREC_JOB_POLL_INTERVAL_S: Input should be a finite number",
        ),
        ("GENREC_BATCH_MAX", "0", "GENREC_BATCH_MAX: Input should be greater than 0"),
        ("GENREC_DATABASE_URL", "notaurl", "GENREC_DATABASE_URL: database_url 'notaurl' is not"),
        ("GENREC_EVENT_TYPES", "{bad", "GENREC_EVENT_TYPES is not valid JSON"),
        ("GENREC_REDIS_URL", "garbage", "GENREC_REDIS_URL: redis_url 'garbage' is not a Redis URL"),
    ],
)
@pytest.mark.parametrize("command", [["models", "list"], ["serve"]])
def test_a_bad_setting_names_its_variable(
    cli_settings: Path,
    no_uvicorn: None,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    _refused(command, expected)


def test_a_bad_redis_url_is_one_line_without_the_password(
    cli_settings: Path, no_uvicorn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was redis-py's ValueError at the first connection: a ~100-frame traceback."""
    monkeypatch.setenv("GENREC_REDIS_URL", "redis://:s3cret@cache:port/0")
    output = _refused(["serve"], "GENREC_REDIS_URL: redis_url 'redis://:***@cache:port/0'")
    assert "s3cret" not in output and len(output.strip().splitlines()) == 1, output


def test_a_short_api_key_is_one_line_that_does_not_print_it(
    cli_settings: Path, no_uvicorn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_API_KEYS", "0123456789abcdef01,s3cret-ish")
    output = _refused(["serve"], "GENREC_API_KEYS: key 2 of 2 has 10 characters")
    assert "s3cret-ish" not in output and "0123456789abcdef01" not in output, output
    assert len(output.strip().splitlines()) == 1, output


def test_every_bad_setting_gets_its_own_line(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_DEVICE", "tpu")
    monkeypatch.setenv("GENREC_MAX_K", "-1")
    output = _refused(["models", "list"])
    lines = output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: GENREC_") for line in lines), output


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "GENREC_IMPRESSION_RETENTION_DAYS": "0.0001",
                "GENREC_ATTRIBUTION_WINDOW_MINUTES": "60",
            },
            "error: GENREC_IMPRESSION_RETENTION_DAYS (0.0001 days) is shorter than "
            "GENREC_ATTRIBUTION_WINDOW_MINUTES (60 minutes)",
        ),
        (
            {"GENREC_EXPERIMENT_CLICK_TYPES": '["clik"]'},
            "error: GENREC_EXPERIMENT_CLICK_TYPES: 'clik' is not an event type of this server",
        ),
    ],
)
def test_a_check_across_settings_names_the_variables(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """Such a check has no single setting: its line read ``error: GENREC_: impression_
    retention_days (...)``, naming fields, not the variables an operator sets."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    output = _refused(["models", "list"])
    assert output.strip().startswith(expected) and "GENREC_:" not in output, output
    assert len(output.strip().splitlines()) == 1, output


def test_serve_refuses_a_device_it_cannot_see_before_starting(
    cli_settings: Path, no_uvicorn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("GENREC_DEVICE", "cuda")
    _refused(["serve"], "GENREC_DEVICE: device='cuda' but torch sees no CUDA device")


def test_a_worker_refuses_a_device_it_cannot_see_before_polling(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import app.worker

    def polled(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the worker started")

    monkeypatch.setattr(app.worker, "run_worker", polled)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("GENREC_DEVICE", "cuda")
    _refused(["worker", "--once"], "GENREC_DEVICE: device='cuda' but torch sees no CUDA device")


@pytest.mark.parametrize("interval", ["0", "-5", "nan", "inf"])
def test_a_worker_refuses_a_poll_interval_that_is_not_a_positive_number(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch, interval: str
) -> None:
    """-5 polled the database in a busy loop; 0 was replaced by the default unsaid."""
    import app.worker

    def polled(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("the worker started")

    monkeypatch.setattr(app.worker, "run_worker", polled)
    _refused(
        ["worker", "--poll-interval", interval],
        f"--poll-interval must be a positive number of seconds, got {float(interval)}",
    )


def test_migrate_on_an_unreachable_database_is_one_line_without_the_password(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was SQLAlchemy's OperationalError traceback."""
    monkeypatch.setenv("GENREC_DATABASE_URL", "postgresql://postgres:s3cret@127.0.0.1:1/x")
    output = _refused(["migrate"], "cannot migrate the database at", "127.0.0.1:1", "refused")
    assert "s3cret" not in output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "99999"], "--port"),
        (["--port", "-1"], "--port"),
        (["--port", "0"], "--port"),
        (["--workers", "0"], "--workers"),
        (["--workers", "-3"], "--workers"),
        (["--workers", "1025"], "--workers"),  # was that many uvicorn processes started
    ],
)
def test_serve_refuses_ports_and_worker_counts_out_of_range(
    cli_settings: Path, no_uvicorn: None, args: list[str], option: str
) -> None:
    _refused(["serve", *args], f"Invalid value for '{option}'")


def test_train_refuses_a_job_size_past_its_limit_before_reading_data(env: Path) -> None:
    """``--set epochs=2**62`` was taken, and trained "forever"; the API refuses the same."""
    output = _refused(
        ["train", "--model", "mult-vae", "--data", str(env), "--set", f"epochs={2**62}"]
    )
    assert output.strip().splitlines() == [f"error: epochs must be at most 10,000, got {2**62}"], (
        output
    )


def test_serve_on_a_port_in_use_is_one_line_before_starting(
    cli_settings: Path, no_uvicorn: None
) -> None:
    """uvicorn started the app (loading every model), then failed to bind and printed its
    own log lines, exit 1."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        output = _refused(["serve", "--port", str(port)])
    assert output.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use (another server "
        "running there?); pick another --port or stop it"
    ], output


def _started(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> dict[str, Any]:
    """``serve args`` got past its checks: what it passed to ``uvicorn.run``."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 0 and len(calls) == 1, result.output
    return calls[0]


def test_serve_takes_the_addresses_uvicorn_listens_on(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe bound what uvicorn does not: ``--host ::`` dual-stack, so a server on
    ``0.0.0.0`` at the port refused it, though one uvicorn worker listens on ``[::]``
    IPv6-only beside it; and ``--host ''`` (every interface, as uvicorn takes it) was
    an unknown host."""
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _started(monkeypatch, ["--host", "::", "--port", str(port)])["host"] == "::"
    assert _started(monkeypatch, ["--host", "", "--port", str(port)])["host"] == ""
    # Several workers: uvicorn binds one socket itself, and the probe binds that one.
    assert _started(monkeypatch, ["--port", str(port), "--workers", "2"])["workers"] == 2


def test_serve_on_a_busy_ipv6_port_names_it_in_brackets(
    cli_settings: Path, no_uvicorn: None
) -> None:
    import socket

    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        output = _refused(["serve", "--host", "::1", "--port", str(port)])
    assert output.startswith(f"error: cannot listen on [::1]:{port}: address already in use"), (
        output
    )


def test_serve_on_an_address_not_of_this_machine_is_one_line(
    cli_settings: Path, no_uvicorn: None
) -> None:
    output = _refused(["serve", "--host", "192.0.2.1", "--port", "8000"])  # TEST-NET-1
    assert output.strip().splitlines() == [
        "error: cannot listen on 192.0.2.1:8000: Cannot assign requested address"
    ], output


def test_messages_are_printed_literally_not_as_markup(env: Path) -> None:
    _refused(["models", "promote", "Bad Name", "1"], "characters from [a-z0-9_.-]")
    _refused(["models", "promote", "[/x]", "1"], "invalid model name '[/x]'")
    missing = env.parent / "[/x].csv"
    _refused(["train", "--model", "popularity", "--data", str(missing)], f"{missing}: no such")


def test_a_data_source_with_brackets_is_listed_as_given(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env.parent)
    (env.parent / "[red]c.csv").write_bytes(env.read_bytes())
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "popularity", "--data", "[red]c.csv"])
    assert trained.exit_code == 0, trained.output
    assert "loading data [red]c.csv" in trained.output
    listing = runner.invoke(app, ["models", "list"])
    assert listing.exit_code == 0, listing.output
    assert "[red]c.csv" in listing.output


@pytest.fixture
def stored(env: Path) -> Path:
    """The store after training popularity version 1 on the clicks file."""
    trained = CliRunner().invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert trained.exit_code == 0, trained.output
    return env.parent / "store" / "popularity" / "versions"


def test_a_version_that_is_a_file_is_one_line_naming_the_path(stored: Path, env: Path) -> None:
    (stored / "2").write_text("not a version folder")
    where = str(stored / "2")
    listing = CliRunner().invoke(app, ["models", "list"])  # the others are still listed
    assert listing.exit_code == 0, listing.output
    assert "unreadable" in listing.output and "Not a directory" in listing.output
    _refused(["models", "promote", "popularity", "2"], where, "Not a directory")
    _refused(["evaluate", "--model", "popularity@2", "--data", str(env)], where)


def test_a_symlink_loop_is_one_line_naming_the_path(stored: Path, env: Path) -> None:
    tensors = stored / "1" / "tensors.safetensors"
    tensors.unlink()
    os.symlink(tensors.name, tensors)  # points at itself
    _refused(
        ["evaluate", "--model", "popularity@1", "--data", str(env)],
        f"{tensors}: Too many levels of symbolic links",
    )


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda v: (v / "manifest.json").write_text("{oops"), "manifest.json: not valid JSON"),
        (lambda v: (v / "tensors.safetensors").unlink(), "tensors.safetensors is listed in the manifest but missing"),
        (lambda v: _flip_last_byte(v / "tensors.safetensors"), "does not match the manifest's"),
    ],
    ids=["manifest-not-json", "weights-missing", "checksum-mismatch"],
)  # fmt: skip
def test_evaluate_checks_a_stored_version_before_loading_the_data(
    stored: Path, env: Path, damage: Callable[[Path], object], message: str
) -> None:
    """The version's error came only after the data set had been loaded."""
    damage(stored / "1")
    output = _refused(["evaluate", "--model", "popularity@1", "--data", str(env)], message)
    assert len(output.strip().splitlines()) == 1, output  # no "loading data ..." before it


def test_a_version_file_linking_out_of_the_store_is_one_line_naming_both(
    stored: Path, env: Path
) -> None:
    """It was followed, and promote moved the alias to it."""
    ids = stored / "1" / "item_ids.json"
    outside = env.parent / "elsewhere.json"
    ids.rename(outside)
    ids.symlink_to(outside)
    _refused(["models", "promote", "popularity", "1"], f"{ids} resolves to {outside}")
    _refused(["evaluate", "--model", "popularity@1", "--data", str(env)], "outside the store")


def test_evaluate_refuses_threads_below_one(env: Path) -> None:
    _refused(
        ["evaluate", "--model", "popularity", "--data", str(env), "--threads", "-1"],
        "Invalid value for '--threads'",
    )


@pytest.mark.parametrize("threads", ["1025", "100000", str(2**40)])
def test_evaluate_refuses_more_threads_than_any_machine_has(
    env: Path, monkeypatch: pytest.MonkeyPatch, threads: str
) -> None:
    """``--threads 100000`` asked OpenMP for that many threads; ``2**40`` was torch's
    "Overflow when unpacking long" traceback."""
    import torch

    def set_num_threads(count: int) -> None:
        raise AssertionError(f"torch was asked for {count} threads")

    monkeypatch.setattr(torch, "set_num_threads", set_num_threads)
    output = _refused(
        ["evaluate", "--model", "popularity", "--data", str(env), "--threads", threads],
        "Invalid value for '--threads'",
    )
    assert "1024" in output, output


@pytest.mark.parametrize(
    ("target", "message"),
    [("no/such/dir/report.json", "does not exist"), (".", "is a directory")],
)
def test_evaluate_refuses_a_json_target_before_evaluating(
    env: Path, target: str, message: str
) -> None:
    output = _refused(
        [
            "evaluate",
            "--model",
            "popularity",
            "--data",
            str(env),
            "--protocol",
            "weak-generalization",
            "--json",
            str(env.parent / target),
        ],
        message,
    )
    assert "ndcg" not in output  # nothing was evaluated


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("", "error: --seeds is empty; give seeds separated by commas, e.g. 0,1,2"),  # ran seed 0
        (" ", "error: --seeds is empty"),
        (",", "error: --seeds expects integers separated by commas like 0,1,2, got ','"),
        ("1,,2", "error: --seeds expects integers separated by commas like 0,1,2, got '1,,2'"),
        ("0,a", "error: --seeds expects integers separated by commas like 0,1,2, got '0,a'"),
        ("-1", "error: seed -1 is out of range; seeds must be in [0, 2^32)"),  # a traceback
        ("0,1,0", "error: seed(s) 0 given more than once; each seed is one run"),
    ],
)
def test_evaluate_refuses_an_empty_or_malformed_seed_list(
    env: Path, seeds: str, message: str
) -> None:
    args = ["--model", "popularity", "--data", str(env), "--protocol", "weak-generalization"]
    output = _refused(["evaluate", *args, "--seeds", seeds])
    lines = output.strip().splitlines()  # one line, and nothing was loaded or evaluated
    assert len(lines) == 1 and lines[0].startswith(message), output


@pytest.mark.parametrize(
    ("command", "flag", "values", "message"),
    [
        ("train --model ease", "--set", ["l2=1", " l2 = 5"], "--set l2 is given twice (l2=1 and l2=5)"),
        ("evaluate --model ease --protocol weak-generalization", "--set", ["l2=1", "l2=1"], "--set l2 is given twice (l2=1 and l2=1)"),
        (
            "evaluate --model biased-mf --protocol ratings-random",
            "--option",
            ["default_rating=3", "default_rating=4"],
            "--option default_rating is given twice (default_rating=3 and default_rating=4)",
        ),
    ],
)  # fmt: skip
def test_a_key_set_twice_is_refused_naming_it(
    env: Path, command: str, flag: str, values: list[str], message: str
) -> None:
    """The last value silently won."""
    repeated = [part for value in values for part in (flag, value)]
    output = _refused([*command.split(), "--data", str(env), *repeated])
    # One line, before any data was loaded.
    assert output.strip().splitlines() == [f"error: {message}; give each key once"]


def test_train_on_several_processes_checks_the_data_before_torchrun(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import distributed

    def launched(*args: Any) -> int:
        raise AssertionError("torchrun was launched")

    monkeypatch.setattr(distributed, "launch", launched)
    missing = env.parent / "nonexistent.csv"
    output = _refused(["train", "--model", "mult-vae", "--data", str(missing), "--nproc", "2"])
    assert output.strip().splitlines() == [f"error: {missing}: no such file"]
    unknown = _refused(["train", "--model", "mult-vae", "--data", "nope", "--nproc", "2"])
    assert "unknown data spec 'nope'" in unknown
    (env.parent / "clicks.txt").write_bytes(env.read_bytes())
    (env.parent / "cols.csv").write_text("user,item\nu,i\n")
    (env.parent / "plain.csv.gz").write_bytes(env.read_bytes())
    cases = {  # each of these started torchrun, and every rank failed in its own traceback
        "clicks.txt": "unknown data spec",
        "cols.csv": "missing required column(s) user_id, item_id",
        "plain.csv.gz": "plain.csv.gz: not a readable CSV file",
    }
    for name, message in cases.items():
        data = str(env.parent / name)
        output = _refused(["train", "--model", "mult-vae", "--data", data, "--nproc", "2"])
        assert len(output.strip().splitlines()) == 1 and message in output, output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "error: no table 'interactions' in sqlite:///"),  # the fixture's empty SQLite file
        (
            "postgresql://postgres:s3cret@127.0.0.1:1/x",
            "error: cannot read the interaction log at postgresql+psycopg://postgres:***@127.0.0.1:1/x: "
            'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused',
        ),
    ],
)  # fmt: skip
def test_train_on_several_processes_checks_the_database_before_torchrun(
    env: Path, monkeypatch: pytest.MonkeyPatch, url: str | None, message: str
) -> None:
    from training import distributed

    def launched(*args: Any) -> int:
        raise AssertionError("torchrun was launched")

    monkeypatch.setattr(distributed, "launch", launched)
    if url is not None:
        monkeypatch.setenv("GENREC_DATABASE_URL", url)
    output = _refused(["train", "--model", "mult-vae", "--data", "db", "--nproc", "2"])
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), output


def test_models_list_shows_a_version_it_cannot_read_beside_the_others(
    stored: Path, env: Path
) -> None:
    """One bad manifest made the whole list an error (exit 2, nothing listed)."""
    trained = CliRunner().invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert trained.exit_code == 0, trained.output  # version 2
    (stored / "1" / "manifest.json").write_text("{oops")
    listing = CliRunner().invoke(app, ["models", "list"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert "unreadable" in listing.output and "manifest.json" in listing.output
    assert "popularity │ 2 " in listing.output  # version 2 is listed as before


def test_models_list_shows_an_unreadable_alias_file_beside_the_other_models(
    stored: Path, env: Path
) -> None:
    """One damaged alias file made the whole list an error (exit 2), hiding every model."""
    trained = CliRunner().invoke(app, ["train", "--model", "ease", "--data", str(env), "--promote"])
    assert trained.exit_code == 0, trained.output
    alias_file = stored.parent.parent / "ease" / "aliases" / "production.json"
    alias_file.write_text("garbage")
    listing = CliRunner().invoke(app, ["models", "list"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert "popularity │ 1 " in listing.output and "ease       │ 1 " in listing.output
    assert f"alias file {alias_file} is unreadable" in listing.output


def test_models_list_says_when_an_alias_points_at_a_version_not_listed(
    stored: Path, env: Path
) -> None:
    """An alias whose version was deleted (or damaged) by hand showed in no row, unsaid."""
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert trained.exit_code == 0, trained.output  # version 2
    promoted = runner.invoke(app, ["models", "promote", "popularity", "2"])
    assert promoted.exit_code == 0, promoted.output
    (stored / "2" / "manifest.json").write_text("{oops")
    listing = runner.invoke(app, ["models", "list"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert "popularity alias production points at version 2, which is unreadable" in (
        listing.output
    )
    shutil.rmtree(stored / "2")
    listing = runner.invoke(app, ["models", "list"], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert "popularity alias production points at version 2, which is not in the store" in (
        listing.output
    )


# --------------------------------------------------------------------------- where results go


@pytest.fixture
def store_is_a_file(cli_settings: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = cli_settings / "store-file"
    path.write_text("not a store")
    monkeypatch.setenv("GENREC_STORE_DIR", str(path))
    return path


def test_an_empty_listing_says_which_store_it_looked_in(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty table was all: run from another folder than usual (the default store is
    ./store) it read as if every model were gone."""
    monkeypatch.chdir(cli_settings)
    monkeypatch.setenv("GENREC_STORE_DIR", "store")
    listing = CliRunner().invoke(app, ["models", "list"])
    assert listing.exit_code == 0, listing.output
    assert f"no stored models in {Path('store').absolute()}" in listing.output.replace("\n", "")


def test_a_store_that_is_a_file_is_one_line_not_an_empty_listing(store_is_a_file: Path) -> None:
    """``models list`` printed an empty table and exited 0."""
    _refused(["models", "list"], f"GENREC_STORE_DIR: {store_is_a_file} is not a directory")


@pytest.mark.parametrize(
    ("store_dir", "message"),
    [
        ("/proc/nope", "GENREC_STORE_DIR: cannot create /proc/nope"),
        ("store-file", "is not a directory"),
        ("store-file/below", "GENREC_STORE_DIR: cannot create"),
    ],
)
def test_train_refuses_a_store_it_cannot_write_before_training(
    env: Path, monkeypatch: pytest.MonkeyPatch, store_dir: str, message: str
) -> None:
    """It trained to the end, then failed on the save."""
    (env.parent / "store-file").write_text("not a store")
    monkeypatch.setenv("GENREC_STORE_DIR", str(env.parent / store_dir))
    output = _refused(["train", "--model", "popularity", "--data", str(env)], message)
    assert "loading data" not in output and "training" not in output, output


def test_tune_refuses_a_store_it_cannot_write_before_the_search(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENREC_STORE_DIR", "/proc/nope")
    output = _refused(["tune", "--data", str(env), "--models", "popularity", "--trials", "1"])
    assert "GENREC_STORE_DIR: cannot create /proc/nope" in output
    assert "loading data" not in output and "trial" not in output, output


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        ("/proc/nope/x.png", "--plot: cannot create /proc/nope"),
        ("clicks.csv/x.png", "is not a directory"),
        (".", "--plot: . is a directory"),
    ],
)
def test_tune_refuses_a_plot_path_it_cannot_write_before_the_search(
    env: Path, monkeypatch: pytest.MonkeyPatch, plot: str, message: str
) -> None:
    """The search ran for its whole budget, then the plot failed and the winner was lost."""
    monkeypatch.chdir(env.parent)
    output = _refused(
        ["tune", "--data", str(env), "--models", "popularity", "--trials", "1", "--plot", plot],
        message,
    )
    assert "loading data" not in output and "trial" not in output, output


def test_models_list_of_an_empty_name_is_one_line_not_every_model(env: Path) -> None:
    """``genrec models list ''`` (an unset shell variable, say) listed every model, as if
    no name had been given."""
    trained = CliRunner().invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert trained.exit_code == 0, trained.output
    output = _refused(["models", "list", ""], "invalid model name ''")
    assert "popularity" not in output and len(output.strip().splitlines()) == 1, output


def test_serve_passes_a_root_path_on_to_uvicorn(
    cli_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--root-path``: the prefix a reverse proxy strips (docs/deployment.md); the Docker
    image runs ``genrec serve``, which had no way to pass it to uvicorn."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    assert _started(monkeypatch, ["--port", port, "--root-path", "/genrec"])["root_path"] == (
        "/genrec"
    )
    assert _started(monkeypatch, ["--port", port, "--root-path", "/a/b-1"])["root_path"] == (
        "/a/b-1"
    )
    assert _started(monkeypatch, ["--port", port])["root_path"] == ""


@pytest.mark.parametrize("root_path", ["genrec", "/genrec/", "/", "/a b", "/x?y", "/%2F"])
def test_serve_refuses_a_root_path_that_is_not_a_path_prefix(
    cli_settings: Path, no_uvicorn: None, root_path: str
) -> None:
    output = _refused(["serve", "--root-path", root_path])
    assert output.strip().splitlines() == [
        "error: --root-path must be a path such as /genrec (starting with /, no trailing /, "
        f"no spaces, query or %-escapes), got {root_path!r}"
    ], output
