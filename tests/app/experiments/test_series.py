"""Results over time (``app.experiments.series``) on the real Postgres: per-bucket rates
counted by the results' rules, and the interval at the last bucket equal to the results'."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import make_engine, make_sessionmaker, session_scope, upgrade_database
from app.db_models import Impression, Interaction
from app.experiments import results, series
from app.experiments.definitions import ExperimentDef, Variant
from tests.conftest import POSTGRES_ADMIN_URL, _service_missing, scratch_database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLICKS, CONVERSIONS = ("click",), ("purchase",)


def _experiment(stopped_after_s: float | None = 120) -> ExperimentDef:
    return ExperimentDef(
        name="ts1",
        status="stopped" if stopped_after_s is not None else "running",
        control="a",
        variants=(Variant("a", "popularity", None, 1), Variant("b", "ease", "1", 1)),
        window_minutes=1.0,
        mixing_sd=0.05,
        created_at=T0,
        stopped_at=T0 + timedelta(seconds=stopped_after_s) if stopped_after_s else None,
    )


@pytest.fixture(scope="module")
def sessions() -> Iterator[sessionmaker[Session]]:
    """A scratch database of this module's own (the series reads every impression of 'ts1')."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(POSTGRES_ADMIN_URL, "genrec_series"))
        except Exception as exc:  # any connection failure means the service is missing
            _service_missing("PostgreSQL", exc)
        upgrade_database(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        yield make_sessionmaker(engine)


@pytest.fixture
def clean(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_scope(sessions) as session:
        session.query(Interaction).delete()
        session.query(Impression).delete()
    return sessions


def _list(
    session: Session,
    variant: str,
    user: str | None,
    at_s: float,
    items: list[str],
    session_id: str | None = None,
) -> str:
    rec_id = str(uuid.uuid4())
    session.add(
        Impression(
            id=rec_id,
            user_id=user,
            session_id=session_id,
            kind="user" if user is not None else "ad_hoc",
            items=items,
            model="popularity" if variant == "a" else "ease",
            version="1",
            experiment="ts1",
            variant=variant,
            created_at=T0 + timedelta(seconds=at_s),
            latency_ms=2.0,
        )
    )
    return rec_id


def _event(session: Session, rec_id: str, user: str, item: str, kind: str, at_s: float) -> None:
    session.add(
        Interaction(
            user_id=user,
            item_id=item,
            type=kind,
            ts=T0 + timedelta(seconds=at_s),
            recommendation_id=rec_id,
            impression_id=rec_id,
        )
    )


def test_bucket_width_keeps_the_chart_short() -> None:
    assert series.bucket_width(timedelta(seconds=0)) == 1
    assert series.bucket_width(timedelta(seconds=60)) == 1
    assert series.bucket_width(timedelta(seconds=61)) == 5
    assert series.bucket_width(timedelta(minutes=10)) == 10
    assert series.bucket_width(timedelta(minutes=11)) == 30
    assert series.bucket_width(timedelta(hours=2)) == 300
    assert series.bucket_width(timedelta(days=365)) == 7 * 86400


def test_per_bucket_rates_follow_the_counting_rules(clean: sessionmaker[Session]) -> None:
    with session_scope(clean) as session:
        # bucket 0 (0-10 s): control u1 clicks one item twice (one click) and buys it.
        r1 = _list(session, "a", "u1", 1, ["i1", "i2", "i3", "i4"])
        _event(session, r1, "u1", "i2", "click", 2)
        _event(session, r1, "u1", "i2", "click", 3)
        _event(session, r1, "u1", "i2", "purchase", 4)
        # bucket 0: variant u2, a click on an item the list did not show: not counted.
        r2 = _list(session, "b", "u2", 5, ["i1", "i2"])
        _event(session, r2, "u2", "i9", "click", 6)
        # bucket 2 (20-30 s): variant u3 clicks two items; one click after the window.
        r3 = _list(session, "b", "u3", 21, ["i1", "i2", "i3", "i4"])
        _event(session, r3, "u3", "i1", "click", 22)
        _event(session, r3, "u3", "i3", "click", 23)
        _event(session, r3, "u3", "i4", "click", 21 + 61)  # window is 1 minute
        # bucket 2: a list of an unknown variant is not counted.
        _list(session, "zz", "u4", 25, ["i1"])
    exp = _experiment(stopped_after_s=40)
    with session_scope(clean) as session:
        got = series.load_series(session, exp, CLICKS, CONVERSIONS, bucket_s=10)
        auto = series.load_series(session, exp, CLICKS, CONVERSIONS)
    assert (auto.bucket_s, len(auto.ends)) == (1, 41)  # a 40-s experiment: 1-s buckets
    assert sum(auto.variants["b"].impressions) == 2 and auto.variants["b"].impressions[21] == 1
    assert got.bucket_s == 10
    assert got.ends == [T0 + timedelta(seconds=10 * (n + 1)) for n in range(5)]
    a, b = got.variants["a"], got.variants["b"]
    assert a.impressions == [1, 0, 0, 0, 0]
    assert a.ctr == [1 / 4, None, None, None, None]
    assert a.conversion_rate == [1 / 4, None, None, None, None]
    assert b.impressions == [1, 0, 1, 0, 0]
    assert b.ctr == [0.0, None, 2 / 4, None, None]
    assert b.conversion_rate == [0.0, None, 0.0, None, None]
    diff = got.vs_control["b"]
    assert "a" not in got.vs_control
    # one control user: no evidence yet, so no interval (a gap on the chart)
    assert diff.ci_low == [None] * 5 and diff.ci_high == [None] * 5
    assert diff.diff[0] == pytest.approx(0.0 - 1 / 4)
    assert diff.diff[-1] == pytest.approx(2 / 6 - 1 / 4)


def test_last_bucket_matches_the_results(clean: sessionmaker[Session]) -> None:
    with session_scope(clean) as session:
        for n in range(100):
            variant = "a" if n % 2 else "b"
            user = f"user{n}"
            rec = _list(session, variant, user, n * 3, ["i1", "i2", "i3", "i4", "i5"])
            clicks = (n % 3 == 0) + (variant == "b" and n % 4 == 0)
            for item in ["i1", "i3"][:clicks]:
                _event(session, rec, user, item, "click", n * 3 + 1)
            if clicks and (n % 5 == 0 or (variant == "b" and n % 4 == 0)):
                _event(session, rec, user, "i1", "purchase", n * 3 + 2)
    exp = _experiment(stopped_after_s=None)
    with session_scope(clean) as session:
        got = series.load_series(
            session, exp, CLICKS, CONVERSIONS, now=T0 + timedelta(seconds=305), bucket_s=10
        )
        totals = results.load_totals(session, exp, CLICKS, CONVERSIONS)
    summary = dict((v.name, entry) for v, entry in results.summarize(exp, totals)["variants"])
    assert got.bucket_s == 10 and len(got.ends) == 31
    assert sum(got.variants["a"].impressions) == summary["a"]["impressions"] == 50
    assert sum(got.variants["b"].impressions) == summary["b"]["impressions"] == 50
    vs = summary["b"]["vs_control"]
    diff = got.vs_control["b"]
    assert diff.diff[-1] == pytest.approx(vs["ctr_diff"])
    assert [diff.ci_low[-1], diff.ci_high[-1]] == pytest.approx(vs["ci95"])
    assert diff.p_value[-1] == pytest.approx(vs["p_value"])
    # fewer than stats.MIN_USERS (20) users a side until n = 39 (at 117 s, bucket 11):
    # still every difference (no point charted); from then on, an interval at every end
    assert diff.ci_low[:11] == diff.ci_high[:11] == [None] * 11 and diff.p_value[:11] == [1.0] * 11
    assert None not in diff.ci_low[11:] and None not in diff.ci_high[11:]
    # the conversion rate's difference is charted the same way, ending at the results'
    conversion, converted = got.conversion_vs_control["b"], vs["conversion"]
    assert conversion.diff[-1] == pytest.approx(converted["conversion_rate_diff"])
    assert [conversion.ci_low[-1], conversion.ci_high[-1]] == pytest.approx(converted["ci95"])
    assert conversion.p_value[-1] == pytest.approx(converted["p_value"])
    assert conversion.ci_low[:11] == [None] * 11 and None not in conversion.ci_low[11:]
    # bucket 0 (0-9 s) holds n = 0..3: b lists n=0 (2 clicks), n=2 (0); a n=1 (0), n=3 (1)
    assert got.variants["b"].ctr[0] == pytest.approx(2 / 10)
    assert got.variants["a"].ctr[0] == pytest.approx(1 / 10)


def test_a_session_counts_apart_from_the_user_with_the_same_id(
    clean: sessionmaker[Session],
) -> None:
    """Results and series fold lists per unit: session "user3" is not user "user3"."""
    with session_scope(clean) as session:
        for n in range(12):
            variant = "a" if n % 2 else "b"
            user = f"user{n}"
            rec = _list(session, variant, user, n * 3, ["i1", "i2", "i3"])
            if n % 3 == 0:
                _event(session, rec, user, "i1", "click", n * 3 + 1)
            rec = _list(session, variant, None, n * 3 + 1, ["i1", "i2", "i3"], session_id=user)
            if n % 4 == 0:
                _event(session, rec, user, "i2", "click", n * 3 + 2)
    exp = _experiment(stopped_after_s=None)
    with session_scope(clean) as session:
        got = series.load_series(
            session,
            exp,
            CLICKS,
            CONVERSIONS,
            now=T0 + timedelta(seconds=40),
            bucket_s=10,
            min_users=2,  # an interval from these few units, to compare with the results'
        )
        totals = results.load_totals(session, exp, CLICKS, CONVERSIONS)
    assert len(totals["a"].users) == len(totals["b"].users) == 12  # 6 users and 6 sessions
    assert totals["b"].users[("session", "user0")].clicks == 1
    assert totals["b"].users[("user", "user0")].clicks == 1
    summary = results.summarize(exp, totals, min_users=2)
    vs = dict((v.name, e) for v, e in summary["variants"])["b"]
    diff = got.vs_control["b"]
    assert diff.diff[-1] == pytest.approx(vs["vs_control"]["ctr_diff"])
    assert [diff.ci_low[-1], diff.ci_high[-1]] == pytest.approx(vs["vs_control"]["ci95"])


def test_no_difference_before_both_arms_have_served(clean: sessionmaker[Session]) -> None:
    """Control served at 1 s, the variant not before 21 s: until then the variant has no
    CTR, so there is no difference to chart (it was control's CTR negated)."""
    with session_scope(clean) as session:
        r1 = _list(session, "a", "u1", 1, ["i1", "i2"])
        _event(session, r1, "u1", "i1", "click", 2)
        _list(session, "b", "u2", 21, ["i1", "i2"])
    with session_scope(clean) as session:
        got = series.load_series(session, _experiment(stopped_after_s=30), CLICKS, (), bucket_s=10)
    diff = got.vs_control["b"]
    assert diff.diff[:2] == [None, None] and diff.diff[2] == pytest.approx(-0.5)
    assert diff.ci_low == diff.ci_high == [None] * 4
