"""``GENREC_ALLOWED_HOSTS``: a comma-separated list of host names (``*.example.com`` for
subdomains, ``*`` for any: the default), refused at start-up when a name could never
match a Host header."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli.common import settings_problems
from app.core.config import Settings


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_any_host_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _settings(monkeypatch, tmp_path).allowed_hosts == ("*",)
    assert _settings(monkeypatch, tmp_path, GENREC_ALLOWED_HOSTS="*").allowed_hosts == ("*",)


def test_hosts_are_comma_separated_and_compared_in_lower_case(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hosts = " API.example.com, *.Internal.example ,10.0.0.5,[::1],"
    settings = _settings(monkeypatch, tmp_path, GENREC_ALLOWED_HOSTS=hosts)
    assert settings.allowed_hosts == (
        "api.example.com",
        "*.internal.example",
        "10.0.0.5",
        "[::1]",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "no host is allowed"),
        (" , ", "no host is allowed"),
        ("api.example.com:8000", "'api.example.com:8000' is not a host name"),
        ("*example.com", "'*example.com' is not a host name"),
        ("api.*.example.com", "'api.*.example.com' is not a host name"),
        ("https://api.example.com", "'https://api.example.com' is not a host name"),
        ('["api.example.com"]', "is not a host name"),
        ("api example.com", "is not a host name"),
    ],
)
def test_a_name_no_host_header_could_match_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(monkeypatch, tmp_path, GENREC_ALLOWED_HOSTS=value)
    (problem,) = settings_problems(refused.value)
    assert problem.startswith("GENREC_ALLOWED_HOSTS: ") and expected in problem, problem
