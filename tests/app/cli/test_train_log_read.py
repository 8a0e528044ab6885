"""``genrec train --data db`` and ``genrec tune --data db`` record when they read the log,
as a retrain job does: a version trained after an erasure then serves the erased user
from what they logged since, as it knows them, instead of folding them in for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from app.cli import app
from app.core.db import make_engine, make_sessionmaker, upgrade_database
from app.repository import NewInteraction, add_interactions
from app.serving.erased import CLOCK_MARGIN, ErasedUsers, Erasure
from app.users import erase_users
from models_store import Manifest, ModelStore
from tests.conftest import COMMIT_MARGIN, age_log

ERASED_AT = datetime.now(UTC) - 2 * CLOCK_MARGIN - timedelta(minutes=1)


def _logged_then_erased(folder: Path) -> Erasure:
    """30 users in two taste groups in the log; ``u0`` erased a while ago, then back with
    three new interactions."""
    url = f"sqlite:///{folder}/log.db"
    upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    start = ERASED_AT - timedelta(days=1)
    rows = [
        NewInteraction(f"u{u}", f"i{(u % 2) * 6 + i}", 4.0, start + timedelta(seconds=u * 10 + i))
        for u in range(30)
        for i in range(6)
    ]
    with sessions() as session:
        add_interactions(session, rows)
        session.commit()
    erased = erase_users(sessions, ["u0"], clock=lambda: ERASED_AT)
    with sessions() as session:
        add_interactions(session, [NewInteraction("u0", f"i{i}", 5.0) for i in (7, 8, 9)])
        session.commit()
    engine.dispose()
    age_log(url)  # before the read's commit margin: its data
    return Erasure(erased.erased_at, epoch=1)


def _served_as_known(manifest: Manifest, erasure: Erasure) -> bool:
    """Whether serving uses ``u0``'s training row of the version (``ErasedUsers.resolve``)."""
    assert manifest.data.cutoff is not None
    model = SimpleNamespace(
        manifest=manifest,
        cutoff=datetime.fromisoformat(manifest.data.cutoff),
        user_index={"u0": 0},
    )
    erased = ErasedUsers()
    erased.update([("u0", erasure)])
    return erased.resolve(model, "u0") == (0, "u0")  # type: ignore[arg-type]


def _read_recorded(manifest: Manifest, before: datetime) -> None:
    """The manifest records the log read, and it is the version's cutoff: every row the
    command read arrived before it, so serving folds none of them in again. The cutoff
    is the read's start less the commit margin (``log_cutoff``)."""
    read_at = manifest.training["log_read_at"]
    assert read_at == manifest.data.cutoff
    assert datetime.fromisoformat(read_at) >= before - COMMIT_MARGIN


def test_train_on_the_log_records_when_it_read_it(cli_settings: Path) -> None:
    erasure = _logged_then_erased(cli_settings)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    result = CliRunner().invoke(app, ["train", "--model", "ease", "--data", "db"])
    assert result.exit_code == 0, result.output
    manifest = ModelStore(cli_settings / "store").manifest("ease", "1")
    assert manifest.data.source == "db"
    _read_recorded(manifest, before)
    assert _served_as_known(manifest, erasure)


def test_train_from_a_file_still_predates_every_erasure(env: Path) -> None:
    erasure = _logged_then_erased(env.parent)
    result = CliRunner().invoke(app, ["train", "--model", "ease", "--data", str(env)])
    assert result.exit_code == 0, result.output
    manifest = ModelStore(env.parent / "store").manifest("ease", "1")
    assert "log_read_at" not in manifest.training
    assert not _served_as_known(manifest, erasure)  # the file may hold the user's rows


def test_tune_on_the_log_records_when_it_read_it(cli_settings: Path) -> None:
    erasure = _logged_then_erased(cli_settings)
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    result = CliRunner().invoke(
        app, ["tune", "--data", "db", "--models", "popularity", "--trials", "1"]
    )
    assert result.exit_code == 0, result.output
    manifest = ModelStore(cli_settings / "store").manifest("popularity", "1")
    _read_recorded(manifest, before)
    assert _served_as_known(manifest, erasure)
