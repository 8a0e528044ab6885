"""Ctrl-C during ``genrec train`` (one process or N), ``models index``, ``evaluate`` and
``items import``: one line saying what was kept, and exit code 130.

With ``--nproc`` torchrun's agent turns the signal into ``SignalException`` once it
has stopped the workers; that was a ~50-line traceback and exit code 1. One process
exited 130 without a word, which reads like a finished command.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.app.cli.conftest import UnhandledSigterm


def _interrupt(*args: Any, **kwargs: Any) -> Any:
    raise KeyboardInterrupt


def test_ctrl_c_in_one_process_is_one_line_and_130(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.pipeline

    monkeypatch.setattr(training.pipeline, "train_and_save", _interrupt)
    result = CliRunner().invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == "interrupted; nothing saved"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_launcher_of_several_processes_is_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals, code: int
) -> None:
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing.api import SignalException

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise SignalException(f"Process 1 got signal: {sig}", sigval=sig)

    monkeypatch.setattr(torch.distributed.run, "run", stopped)
    args = ["train", "--model", "mult-vae", "--data", str(env), "--nproc", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        "training mult-vae on 2 processes (torchrun) ...",
        "interrupted; nothing saved",
    ]


@pytest.mark.parametrize(
    ("target", "args", "line"),
    [
        (
            ("training.ann", "index_version"),
            ["models", "index", "bpr-mf@1"],
            "interrupted; if it was writing the index files, the version is refused until "
            "this command runs again, which repairs it (before that, the version is unchanged)",
        ),
        (
            ("training.stored_evaluation", "open_stored"),
            ["evaluate", "--model", "popularity@1", "--data", "{env}"],
            "interrupted; no report",
        ),
        (
            ("app.catalog", "import_records"),
            ["items", "import", "{env}"],
            "interrupted; the import is all or nothing: run it again",
        ),
    ],
    ids=["models-index", "evaluate", "items-import"],
)
def test_ctrl_c_in_other_commands_is_one_line_and_130(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: tuple[str, str],
    args: list[str],
    line: str,
) -> None:
    """They exited 130 without a word; ``models index`` may leave its version refused."""
    import importlib

    monkeypatch.setattr(importlib.import_module(target[0]), target[1], _interrupt)
    if args[0] == "items":
        env.write_text("item_id,title\ni1,One\n")
    result = CliRunner().invoke(app, [arg.format(env=env) for arg in args])
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == line
    assert "Traceback" not in result.output


def test_sigterm_in_one_process_is_one_line_and_143(
    env: Path, monkeypatch: pytest.MonkeyPatch, sigterm: Any
) -> None:
    """SIGTERM (``docker stop``) killed a one-process ``train`` outright: exit 143 with no
    word, and no ``finally`` ran. It now unwinds as Ctrl-C does."""
    import training.pipeline

    monkeypatch.setattr(training.pipeline, "train_and_save", sigterm)
    result = CliRunner().invoke(app, ["train", "--model", "popularity", "--data", str(env)])
    assert not isinstance(result.exception, UnhandledSigterm), result.exception
    assert result.exit_code == 143, result.output
    assert result.output.strip().splitlines()[-1] == "interrupted; nothing saved"
    assert "Traceback" not in result.output
    assert signal.getsignal(signal.SIGTERM) is sigterm.handler  # the previous one is back
