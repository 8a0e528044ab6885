"""Settings: environment prefix, defaults, URL normalisation, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings, get_settings, normalise_database_url


def test_defaults_run_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = Settings()
    assert settings.database_url == "sqlite:///./var/genrec.db"
    assert settings.redis_url is None
    assert settings.store_dir == Path("store")
    assert settings.device == "cpu"
    assert settings.default_model == "mult-vae"
    assert settings.auto_migrate is True


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GENREC_DEFAULT_MODEL=ease\nGENREC_MAX_K=50\n")
    monkeypatch.setenv("GENREC_REDIS_URL", "redis://example:6379/1")
    monkeypatch.setenv("GENREC_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.default_model == "ease"
    assert settings.max_k == 50
    assert settings.redis_url == "redis://example:6379/1"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgres_urls_use_psycopg3(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("mysql://u@127.0.0.1:1/db", "genrec runs on postgresql or sqlite, not 'mysql'"),
        ("postgresql://u:s3cret@h:abc/db", "is not a valid SQLAlchemy URL"),
    ],
)
def test_database_urls_genrec_cannot_use_are_refused_without_showing_a_password(
    given: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        normalise_database_url(given)
    assert "s3cret" not in str(refused.value)


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENREC_DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings()


@pytest.mark.parametrize(("value", "accepted"), [("0", True), ("0.5", True), ("1e-6", False)])
def test_the_attribution_window_is_off_or_at_least_a_second(
    monkeypatch: pytest.MonkeyPatch, value: str, accepted: bool
) -> None:
    monkeypatch.setenv("GENREC_ATTRIBUTION_WINDOW_MINUTES", value)
    if accepted:
        assert Settings().attribution_window_minutes == float(value)
        return
    with pytest.raises(ValidationError, match=r"attribution_window_minutes[\s\S]*one second"):
        Settings()


@pytest.mark.parametrize(("value", "accepted"), [("10080", True), ("10081", False)])
def test_a_scheduled_tune_budget_is_one_a_tune_job_takes(
    monkeypatch: pytest.MonkeyPatch, value: str, accepted: bool
) -> None:
    """A budget tune jobs refuse (over a week) stopped every worker at its first
    schedule with a traceback; it is refused where it is set, naming the setting."""
    monkeypatch.setenv("GENREC_TUNE_BUDGET_MINUTES", value)
    if accepted:
        assert Settings().tune_budget_minutes == float(value)
        return
    with pytest.raises(ValidationError, match=r"tune_budget_minutes[\s\S]*10080"):
        Settings()


@pytest.mark.parametrize(("value", "accepted"), [("86400", True), ("1e12", False)])
def test_a_job_lease_is_at_most_a_day(
    monkeypatch: pytest.MonkeyPatch, value: str, accepted: bool
) -> None:
    """A lease's end is the database's clock plus the lease in SQL: on SQLite a lease of
    1e12 s ended NULL (past its date range), a lease no worker could ever take over."""
    monkeypatch.setenv("GENREC_JOB_LEASE_S", value)
    if accepted:
        assert Settings().job_lease_s == float(value)
        return
    with pytest.raises(ValidationError, match=r"job_lease_s[\s\S]*86400"):
        Settings()


def test_get_settings_is_cached() -> None:
    assert get_settings() is get_settings()


@pytest.mark.parametrize("setting", ["EXPERIMENT_CLICK_TYPES", "EXPERIMENT_CONVERSION_TYPES"])
def test_experiment_event_types_must_be_event_types(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    """A type the server refuses (``unknown_event_type``) can never be logged: counting it
    left every experiment's clicks (or conversions) at 0 in every variant, silently."""
    monkeypatch.setenv(f"GENREC_{setting}", '["clicks"]')
    with pytest.raises(ValidationError, match=rf"GENREC_{setting}: 'clicks'[\s\S]*click"):
        Settings()
    monkeypatch.setenv("GENREC_EVENT_TYPES", '{"clicks": 1}')
    monkeypatch.setenv("GENREC_EXPERIMENT_CLICK_TYPES", '["clicks"]')
    monkeypatch.setenv("GENREC_EXPERIMENT_CONVERSION_TYPES", '["clicks"]')
    assert Settings().experiment_click_types == ["clicks"]
    # the defaults are not refused on a vocabulary without them (no shop, no purchase)
    monkeypatch.delenv("GENREC_EXPERIMENT_CLICK_TYPES")
    monkeypatch.delenv("GENREC_EXPERIMENT_CONVERSION_TYPES")
    assert Settings().experiment_conversion_types == ["purchase"]


def test_retention_must_outlast_the_attribution_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list deleted before its window closed left its later clicks unattributed."""
    monkeypatch.setenv("GENREC_IMPRESSION_RETENTION_DAYS", "0.01")  # 14.4 minutes
    with pytest.raises(
        ValidationError, match=r"GENREC_IMPRESSION_RETENTION_DAYS \(0.01 days\) is shorter"
    ):
        Settings()
    monkeypatch.setenv("GENREC_ATTRIBUTION_WINDOW_MINUTES", "10")
    assert Settings().impression_retention_days == 0.01
    monkeypatch.setenv("GENREC_IMPRESSION_RETENTION_DAYS", "off")
    monkeypatch.setenv("GENREC_ATTRIBUTION_WINDOW_MINUTES", "43200")
    assert Settings().impression_retention_days is None
