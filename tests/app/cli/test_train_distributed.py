"""``genrec train --nproc 2``: two processes on CPU (Gloo) write one normal version.

The version must load like any other (checksums, safetensors), its manifest
metric must be exactly what one process measures on the stored artifact over
the whole held-out slice (the ranks' figures are reduced, not rank 0's
share), and it must be within noise of a one-process run.

"Within noise": on this data (200 users, four taste groups, 15 epochs) the
one-process NDCG@10 over seeds 0-7 had mean 0.597 and standard deviation
0.008 (0.591-0.612); two processes differ from one by their batch order and
noise streams, not their maths, so the two figures may differ by about
sqrt(2) x 0.008 = 0.011 per seed. ``NOISE`` = 0.04 is over three such
deviations, and well under the gap a broken reduction or unsynchronised
gradients make (one rank's half of the users, or a model stuck near its
initial ~0.2 after 15 epochs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.repository import NewInteraction, add_interactions
from models_store import ModelStore
from tests.conftest import age_log
from training import distributed
from training.data.datasets import load_dataset
from training.pipeline import train_model
from training.stored_evaluation import evaluate_stored

NOISE = 0.04
SETTINGS = {"epochs": 15, "patience": "none"}


def _taste_groups(path: Path) -> Path:
    """200 users in four taste groups of 15 items; each rates 8 of their group's items."""
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,rating,timestamp"]
    for u in range(200):
        group = u % 4
        items = rng.choice(np.arange(group * 15, group * 15 + 15), size=8, replace=False)
        for t, item in enumerate(items):
            rows.append(f"u{u},i{item},{int(rng.integers(1, 6))},{1_700_000_000 + u * 10 + t}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread in this process for the one-process run (two-core CI machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_two_processes_write_a_loadable_version_within_noise_of_one(
    cli_settings: Path, one_thread: None
) -> None:
    csv = _taste_groups(cli_settings / "groups.csv")
    sets = [f"--set={k}={v}" for k, v in SETTINGS.items()]
    result = CliRunner().invoke(
        app, ["train", "--model", "mult-vae", "--data", str(csv), *sets, "--nproc", "2"]
    )
    assert result.exit_code == 0, result.output

    store = ModelStore(cli_settings / "store")
    assert [m.version for m in store.list_versions("mult-vae")] == ["1"]  # one rank wrote, once
    loaded = store.load("mult-vae", "1")  # checksums verified
    manifest = loaded.manifest
    assert manifest.training["epochs_run"] == SETTINGS["epochs"]
    assert manifest.data.n_users == 200

    data = load_dataset(str(csv))
    stored = evaluate_stored(store, "mult-vae", "1", data)
    for name, value in manifest.metrics.items():
        assert stored.metrics[name] == pytest.approx(value, abs=1e-6), name

    single = train_model("mult-vae", data, dict(SETTINGS))
    assert abs(manifest.metrics["ndcg@10"] - single.metrics["ndcg@10"]) <= NOISE


def test_on_the_log_rank_0_alone_reads_the_cutoff_and_every_rank_reads_up_to_it(
    cli_settings: Path,
) -> None:
    """Every rank asked the database for the log's read time and rank 0's answer was kept:
    N queries for one answer, and ranks whose answers differed read up to an instant that
    only rank 0 had asked for. Each rank here answers an instant of its own
    (``train_rank``), so a rank that asked would show it."""
    url = f"sqlite:///{cli_settings}/log.db"
    upgrade_database(url)
    engine = make_engine(url)
    start = datetime.now(UTC) - timedelta(days=1)
    rows = [
        NewInteraction(f"u{u}", f"i{(u % 2) * 6 + i}", 4.0, start + timedelta(seconds=u * 10 + i))
        for u in range(30)
        for i in range(6)
    ]
    with make_sessionmaker(engine)() as session:
        add_interactions(session, rows)
        session.commit()
    engine.dispose()
    age_log(url)  # older than the commit margin: the read takes every row

    out = cli_settings / "ranks"
    out.mkdir()
    args = ["train", "--model", "mult-vae", "--data", "db", "--set=epochs=2"]
    assert distributed.launch(2, "tests.app.cli.train_rank", [str(out), *args]) == 0
    first, second = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert len(first["asked"]) == 1 and second["asked"] == []  # one query, by rank 0
    (cutoff,) = first["asked"]
    assert first["read_until"] == second["read_until"] == [cutoff]
    manifest = ModelStore(cli_settings / "store").manifest("mult-vae", "1")
    assert manifest.training["log_read_at"] == manifest.data.cutoff == cutoff


def test_models_not_trained_by_gradient_steps_refuse_several_processes(env: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--model", "ease", "--data", str(env), "--nproc", "2"]
    )
    assert result.exit_code == 2, result.output
    assert "model 'ease' does not train on several processes" in result.output
    assert "mult-vae" in result.output and "Traceback" not in result.output


def test_nproc_below_one_is_a_usage_error(env: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--model", "mult-vae", "--data", str(env), "--nproc", "0"]
    )
    assert result.exit_code == 2, result.output
    assert "--nproc" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("nproc", ["1025", "100000", str(2**64)])
def test_nproc_past_any_machine_is_a_usage_error_before_launching(
    env: Path, monkeypatch: pytest.MonkeyPatch, nproc: str
) -> None:
    """``--nproc 100000`` went to torchrun, which tried to start that many processes."""
    from training import distributed

    def launch(count: int, module: str, args: list[str]) -> int:
        raise AssertionError(f"torchrun was asked for {count} processes")

    monkeypatch.setattr(distributed, "launch", launch)
    result = CliRunner().invoke(
        app, ["train", "--model", "mult-vae", "--data", str(env), "--nproc", nproc]
    )
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--nproc'" in result.output and "1024" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


class _Started(Exception):
    """Raised where a rank would join torchrun's process group: the checks before it passed."""


@pytest.mark.parametrize(("rank", "refused"), [("1", False), ("0", True)])
def test_only_the_rank_that_saves_needs_a_store_it_can_write(
    env: Path, monkeypatch: pytest.MonkeyPatch, rank: str, refused: bool
) -> None:
    """Every rank checked GENREC_STORE_DIR could be written, so a machine of a several-machine
    run without the store (docs/training.md: "the others never touch the store") failed the
    whole run, or made a store folder of its own."""
    from training import distributed

    def started(*args: object, **kwargs: object) -> None:
        raise _Started

    blocker = env.parent / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GENREC_STORE_DIR", str(blocker / "store"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setattr(distributed, "session", started)
    result = CliRunner().invoke(app, ["train", "--model", "mult-vae", "--data", str(env)])
    if refused:
        assert result.exit_code == 2 and "GENREC_STORE_DIR: cannot create" in result.output
    else:
        assert isinstance(result.exception, _Started), result.output
