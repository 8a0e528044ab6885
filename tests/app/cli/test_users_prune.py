"""``genrec users prune-erasures``: deletes the erasure records no stored version needs (one
that holds the user and may hold their erased rows), never a recent one nor the newest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app
from app.core.cache import MemoryCache
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.core.metrics import Metrics
from app.repository import NewInteraction, add_interactions, erasures_since
from app.serving.erased import ErasedUsers
from app.users import ErasureSync, erase_users
from tests.conftest import age_log

LONG_AGO = datetime.now(UTC) - timedelta(days=40)


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _sessions(folder: Path) -> Any:
    url = f"sqlite:///{folder}/log.db"
    upgrade_database(url)
    return make_sessionmaker(make_engine(url))


def _records(folder: Path) -> list[str]:
    with _sessions(folder)() as session:
        return sorted(row.user_id for row in erasures_since(session, -1))


def test_prune_keeps_what_a_stored_version_needs(env: Path) -> None:
    """v1 is trained from a file holding u0..u29: it needs u3's record for good. v2 is
    trained on the log after x8 was erased and came back: it holds x8, but read none of
    the erased rows. x9 is held by no version. u4 was erased today."""
    folder = env.parent
    sessions = _sessions(folder)
    start = LONG_AGO - timedelta(days=1)
    rows = [
        NewInteraction(f"u{u}", f"i{(u % 2) * 6 + i}", 4.0, start + timedelta(seconds=u * 10 + i))
        for u in range(30)
        for i in range(6)
    ]
    with sessions() as session:
        add_interactions(session, rows)
        session.commit()
    assert _run("train", "--model", "ease", "--data", str(env))[0] == 0
    erase_users(sessions, ["u3", "x9", "x8"], clock=lambda: LONG_AGO)
    with sessions() as session:
        add_interactions(session, [NewInteraction("x8", f"i{i}", 5.0) for i in (1, 2, 3)])
        session.commit()
    age_log(f"sqlite:///{folder}/log.db")  # before the read's commit margin: its data
    assert _run("train", "--model", "ease", "--data", "db")[0] == 0
    erase_users(sessions, ["u4"])

    code, output = _run("users", "prune-erasures", "--dry-run")
    assert (code, output.strip()) == (
        0,
        "would prune 2 of 4 erasure record(s); kept 2: 1 needed by a stored version, "
        "0 by a queued or running job, 1 newer than 30 day(s), 0 of the newest erasure",
    ), output
    assert _records(folder) == ["u3", "u4", "x8", "x9"]
    code, output = _run("users", "prune-erasures")
    assert code == 0 and output.startswith("pruned 2 of 4 erasure record(s); kept 2"), output
    assert _records(folder) == ["u3", "u4"]

    # Once the file-trained version is gone, nothing holds u3's erased rows.
    assert _run("models", "delete", "ease", "1")[0] == 0
    code, output = _run("users", "prune-erasures")
    assert code == 0 and output.startswith("pruned 1 of 2 erasure record(s)"), output
    assert _records(folder) == ["u4"]


def test_the_newest_erasure_is_kept_so_no_poll_passes_over_the_next(env: Path) -> None:
    """A server has read up to the newest record (z, epoch 2). Were it pruned with m's,
    the next erasure would take epoch 1 again, and that server's poll, past epoch 2,
    would never see it."""
    folder = env.parent
    sessions = _sessions(folder)
    assert _run("train", "--model", "ease", "--data", str(env))[0] == 0
    erase_users(sessions, ["m"], clock=lambda: LONG_AGO)
    erase_users(sessions, ["z"], clock=lambda: LONG_AGO)
    erased = ErasedUsers()
    sync = ErasureSync(sessions, erased, MemoryCache(Metrics()), interval_s=3600)
    assert sync.refresh() == 2
    code, output = _run("users", "prune-erasures")
    assert code == 0 and output.strip().endswith("1 of the newest erasure"), output
    assert _records(folder) == ["z"]
    erase_users(sessions, ["b"])
    assert sync.refresh() == 1 and "b" in erased


def test_refusals_are_one_line_and_exit_2(
    cli_settings: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.config import get_settings

    sessions = _sessions(cli_settings)
    erase_users(sessions, ["m"], clock=lambda: LONG_AGO)
    erase_users(sessions, ["z"], clock=lambda: LONG_AGO)
    code, output = _run("users", "prune-erasures")  # no version at all: a wrong store?
    assert code == 2 and "holds no version: pruning against it would prune" in output, output
    assert _run("train", "--model", "ease", "--data", str(env))[0] == 0
    (cli_settings / "store" / "ease" / "versions" / "1" / "user_ids.json").write_text("[]")
    code, output = _run("users", "prune-erasures")
    assert code == 2 and "cannot tell which erasures ease version 1 needs" in output, output
    monkeypatch.setenv("GENREC_CACHE_TTL_S", str(3 * 86400))
    get_settings.cache_clear()
    code, output = _run("users", "prune-erasures", "--older-than-days", "2")
    assert code == 2 and "is within GENREC_CACHE_TTL_S" in output, output
    assert len(output.strip().splitlines()) == 1
    assert _records(cli_settings) == ["m", "z"]


@pytest.mark.parametrize("days", ["1000000", "9999999999"])
def test_a_grace_period_past_any_date_is_one_line(cli_settings: Path, days: str) -> None:
    """A date that many days back does not exist: it was an ``OverflowError`` traceback
    (in ``timedelta`` itself, or subtracting it from now once a record existed)."""
    erase_users(_sessions(cli_settings), ["m"], clock=lambda: LONG_AGO)
    code, output = _run("users", "prune-erasures", "--older-than-days", days)
    assert code == 2 and "--older-than-days" in output and "36500" in output, output
    assert _records(cli_settings) == ["m"]


def _job(
    sessions: Any,
    status: str,
    started_at: datetime | None,
    kind: str = "retrain",
    cutoff: datetime | None = None,
) -> None:
    """A job row as a worker leaves it: claimed at ``started_at`` (the database's clock),
    a tune job's recorded log cutoff in its progress."""
    from app.repository import NewJob, insert_job

    with sessions() as session:
        row = insert_job(
            session,
            NewJob("ease", {}, "log", "never", "manual", 3, kind=kind),
            started_at or datetime.now(UTC),
        )
        row.status = status
        row.started_at = started_at
        if cutoff is not None:
            row.progress = {"phase": "searching", "cutoff": cutoff.isoformat()}
        session.commit()


def test_prune_keeps_the_records_a_job_still_running_may_need(env: Path) -> None:
    """A job that read the log before an erasure and runs past the grace period saves a
    version that holds the erased user's rows; pruned meanwhile, the record is not there
    to keep serving from stopping using them. r1's erasure came after a running retrain
    job started (the read is no earlier than its claim, less the commit margin), t1's
    after a queued tune job's recorded cutoff (a retry reads up to it again); both are
    kept. n1's came before every job still queued or running read the log: a job that
    started before it has finished (its version, if any, is in the store), a queued job
    never started reads after now."""
    folder = env.parent
    sessions = _sessions(folder)
    assert _run("train", "--model", "ease", "--data", str(env))[0] == 0
    _job(sessions, "succeeded", LONG_AGO - timedelta(days=5))
    _job(sessions, "running", LONG_AGO - timedelta(days=1))
    _job(sessions, "queued", None)
    erase_users(sessions, ["n1"], clock=lambda: LONG_AGO - timedelta(days=3))
    erase_users(sessions, ["r1"], clock=lambda: LONG_AGO)
    _job(sessions, "queued", LONG_AGO - timedelta(days=4), "tune", LONG_AGO - timedelta(days=2))
    erase_users(sessions, ["t1"], clock=lambda: LONG_AGO)
    erase_users(sessions, ["last"], clock=lambda: LONG_AGO)  # needed by the jobs too

    code, output = _run("users", "prune-erasures")

    assert (code, output.strip()) == (
        0,
        "pruned 1 of 4 erasure record(s); kept 3: 0 needed by a stored version, "
        "3 by a queued or running job, 0 newer than 30 day(s), 0 of the newest erasure",
    ), output
    assert _records(folder) == ["last", "r1", "t1"]


def test_a_job_that_finishes_during_the_prune_has_its_version_seen(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The jobs are read before the store: a job that finishes in between saved its
    version first, so one of the two reads sees what it needs. Here the running job saves
    a version holding u3 (from the file: it predates every erasure) and finishes right
    after the prune's first read; u3's record stays. (Read the other way round, neither
    read saw it: the store before the version, the jobs after the job.)"""
    import app.users.prune as prune
    from app.core.config import get_settings
    from models_store import ModelStore

    folder = env.parent
    sessions = _sessions(folder)
    rows = [
        NewInteraction(f"v{u}", f"i{(u % 2) * 6 + i}", 4.0) for u in range(30) for i in range(6)
    ]
    with sessions() as session:
        add_interactions(session, rows)
        session.commit()
    age_log(f"sqlite:///{folder}/log.db")  # before the read's commit margin
    assert _run("train", "--model", "ease", "--data", "db")[0] == 0  # holds no u-user
    _job(sessions, "running", LONG_AGO - timedelta(days=1))
    erase_users(sessions, ["u3"], clock=lambda: LONG_AGO)
    erase_users(sessions, ["last"], clock=lambda: LONG_AGO)
    finished: list[bool] = []

    def then_finish(look: Any) -> Any:
        """``look``, and after the first of the two looks the job saves and finishes."""

        def wrapped(*args: Any) -> Any:
            result = look(*args)
            if not finished:
                finished.append(True)
                assert _run("train", "--model", "ease", "--data", str(env))[0] == 0
                with sessions() as session:
                    session.execute(text("UPDATE retrain_jobs SET status = 'succeeded'"))
                    session.commit()
            return result

        return wrapped

    for name in ("earliest_job_read", "needed_by_store"):
        monkeypatch.setattr(prune, name, then_finish(getattr(prune, name)))

    plan, deleted = prune.prune_erasures(
        sessions, ModelStore(get_settings().store_dir), timedelta(days=30), dry_run=False
    )

    assert finished == [True]
    assert deleted == 0 and plan.prunable == []
    assert _records(folder) == ["last", "u3"]
