"""What a job trains on: the log, or production's base data followed by the log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import session_scope
from app.repository import NewInteraction, add_interactions
from app.retrain.export import base_spec, concat, export_interactions
from app.retrain.runner import JobContext
from training.data.errors import DataError
from training.data.interactions import Interactions


@pytest.mark.parametrize(
    ("source", "spec"),
    [
        ("ml-100k", "ml-100k"),
        ("ml-100k+log", "ml-100k"),
        ("/data/base.csv+log", "/data/base.csv"),
        ("log", None),
        ("db", None),
        ("", None),
    ],
)
def test_base_spec_follows_the_chain_of_job_versions(source: str, spec: str | None) -> None:
    assert base_spec(source) == spec


def test_concat_keeps_base_records_first_and_in_order(base_data: Interactions) -> None:
    logged = Interactions.from_arrays(["zz", "u1"], ["5", "999"], [4.0, 2.0], [1, 2])
    both = concat(base_data, logged)
    users = np.asarray(both.user_ids.ids, dtype=object)[both.users]
    base_users = np.asarray(base_data.user_ids.ids, dtype=object)[base_data.users]
    assert list(users[: len(base_data)]) == list(base_users)
    assert list(users[len(base_data) :]) == ["zz", "u1"]
    assert both.explicit and len(both) == len(base_data) + 2
    assert "999" in both.item_ids


def test_clicks_on_an_explicit_base_get_the_top_rating(base_data: Interactions) -> None:
    clicks = Interactions.from_arrays(["zz"], ["5"], None, [1])
    both = concat(base_data, clicks)
    assert float(both.ratings[-1]) == float(base_data.ratings.max())


def _log(sessions: sessionmaker[Session], rows: list[tuple[str, str]], ts: datetime) -> None:
    with session_scope(sessions) as session:
        add_interactions(session, [NewInteraction(u, i, 4.0, ts) for u, i in rows])


def test_log_plus_base_reads_production_source_and_the_log_up_to_the_cutoff(
    promote_base: Callable[..., str],
    job_context: JobContext,
    base_data: Interactions,
    base_csv: Path,
    log_new_users: Callable[..., list[str]],
) -> None:
    promote_base("ease")
    log_new_users(2)
    until = datetime.now(UTC)
    _log(job_context.sessions, [("later", "1")], until + timedelta(hours=1))  # after the cutoff
    exported = export_interactions(
        "log+base", "ease", job_context.store, job_context.settings, until
    )
    assert exported.source == f"{base_csv}+log"
    assert len(exported.data) == len(base_data) + 20
    assert "new0" in exported.data.user_ids and "later" not in exported.data.user_ids
    log_only = export_interactions("log", "ease", job_context.store, job_context.settings, until)
    assert (log_only.source, len(log_only.data)) == ("log", 20)


def test_unloadable_base_is_noted_and_the_log_alone_is_used(
    promote_base: Callable[..., str],
    job_context: JobContext,
    base_csv: Path,
    log_new_users: Callable[..., list[str]],
) -> None:
    promote_base("ease")
    base_csv.unlink()
    log_new_users(1)
    exported = export_interactions(
        "log+base", "ease", job_context.store, job_context.settings, datetime.now(UTC)
    )
    assert exported.source == "log" and len(exported.data) == 10
    assert any("not loadable" in note for note in exported.notes)


def test_log_plus_base_without_production_says_it_trains_on_the_log_alone(
    job_context: JobContext, log_new_users: Callable[..., list[str]]
) -> None:
    """Asked for log+base, a model with no production version has no base to take: the
    job's log said only "data log: ...", as if log+base had been read as log."""
    log_new_users(1)
    exported = export_interactions(
        "log+base", "ease", job_context.store, job_context.settings, datetime.now(UTC)
    )
    assert exported.source == "log" and len(exported.data) == 10
    assert exported.notes == [
        "no production version of 'ease' to take the base data set from; training on the log alone"
    ]


def test_empty_log_without_base_is_a_clear_error(job_context: JobContext) -> None:
    with pytest.raises(DataError, match="no interactions"):
        export_interactions(
            "log+base", "ease", job_context.store, job_context.settings, datetime.now(UTC)
        )


def test_empty_log_with_a_base_trains_on_the_base(
    promote_base: Callable[..., str], job_context: JobContext, base_data: Interactions
) -> None:
    promote_base("ease")
    exported = export_interactions(
        "log+base", "ease", job_context.store, job_context.settings, datetime.now(UTC)
    )
    assert len(exported.data) == len(base_data)
    assert any("base data alone" in note for note in exported.notes)


def test_the_log_export_reads_event_types_through_the_servers_weights(
    job_context: JobContext,
) -> None:
    """A job trains on the configured weights: a dislike never becomes a positive, and a
    type the server weighs (here ``wishlist`` 1.5) is read as its weight."""
    settings = job_context.settings.model_copy(
        update={"event_types": {"wishlist": 1.5, "dislike": -1.0}}
    )
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope(job_context.sessions) as session:
        add_interactions(
            session,
            [
                NewInteraction("w1", "1", None, ts, type="wishlist"),
                NewInteraction("w1", "2", None, ts, type="dislike"),
                NewInteraction("w2", "1", None, ts),
            ],
        )
    exported = export_interactions("log", "ease", job_context.store, settings, datetime.now(UTC))
    data = exported.data
    records = {
        (data.user_ids.external(int(u)), data.item_ids.external(int(i)), float(r))
        for u, i, r in zip(data.users, data.items, data.ratings, strict=True)
    }
    assert records == {("w1", "1", 1.5), ("w2", "1", 1.0)}


def _log_ratings_and_clicks(sessions: sessionmaker[Session]) -> None:
    """20 users, each 6 ratings of 4 or 5 and 3 clicks (no rating), some typed."""
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        NewInteraction(f"m{u}", str(i), 4.0 + (u + i) % 2, ts) for u in range(20) for i in range(6)
    ]
    rows += [
        NewInteraction(f"m{u}", str(i), None, ts, type="click" if i % 2 else None)
        for u in range(20)
        for i in range(6, 9)
    ]
    with session_scope(sessions) as session:
        add_interactions(session, rows)


def test_a_rating_model_trains_on_the_rated_rows_of_a_mixed_log(
    job_context: JobContext,
) -> None:
    """Clicks beside ratings were ratings of 1.0 to a rating model: a retrain job of one
    reads the rated rows alone; a top-k model's job still reads every event."""
    _log_ratings_and_clicks(job_context.sessions)
    until = datetime.now(UTC)
    rating = export_interactions("log", "biased-mf", job_context.store, job_context.settings, until)
    assert len(rating.data) == 120 and set(rating.data.ratings.tolist()) == {4.0, 5.0}
    assert rating.data.explicit and rating.data.n_items == 6  # the clicked items are not in it
    topk = export_interactions("log", "ease", job_context.store, job_context.settings, until)
    assert len(topk.data) == 180 and float(topk.data.ratings.min()) == 1.0


def test_a_rating_models_log_plus_base_adds_the_rated_rows_of_the_log(
    promote_base: Callable[..., str], job_context: JobContext, base_data: Interactions
) -> None:
    promote_base("biased-mf", epochs=1)
    _log_ratings_and_clicks(job_context.sessions)
    exported = export_interactions(
        "log+base", "biased-mf", job_context.store, job_context.settings, datetime.now(UTC)
    )
    assert len(exported.data) == len(base_data) + 120
    assert float(exported.data.ratings[len(base_data) :].min()) == 4.0
