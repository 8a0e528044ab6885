"""``GENREC_API_KEYS``: a comma-separated list, refused at start-up when a key is no secret,
and never named in the error that refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli.common import settings_problems
from app.core.config import Settings

KEY_A = "a1b2c3d4e5f6a7b8c9d0"
KEY_B = "0f1e2d3c4b5a69788796"


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _keys(settings: Settings) -> list[str]:
    return [key.get_secret_value() for key in settings.api_keys]


def test_unset_or_blank_means_no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _settings(monkeypatch, tmp_path).api_keys == ()
    assert _settings(monkeypatch, tmp_path, GENREC_API_KEYS="").api_keys == ()
    assert _settings(monkeypatch, tmp_path, GENREC_API_KEYS=" , ").api_keys == ()


def test_keys_are_comma_separated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Blanks around a comma and a trailing comma (a rotated-out key removed) are no keys."""
    settings = _settings(monkeypatch, tmp_path, GENREC_API_KEYS=f" {KEY_A} , {KEY_B},")
    assert _keys(settings) == [KEY_A, KEY_B]
    assert KEY_A not in repr(settings) and KEY_B not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("short-key", "GENREC_API_KEYS: the key has 9 characters; an API key needs at least 16"),
        (f"{KEY_A},tooshort", "GENREC_API_KEYS: key 2 of 2 has 8 characters"),
        ("a1b2c3d4 e5f6a7b8c9d0", "GENREC_API_KEYS: the key holds white space"),
        (f"{KEY_A}\t{KEY_B}", "GENREC_API_KEYS: the key holds white space"),
        ("clé-très-secrète-1234", "outside printable ASCII"),
        # The JSON list the other list settings take, and quoted keys: no client sends those.
        (f'["{KEY_A}", "{KEY_B}"]', "key 1 of 2 holds a quote or a bracket"),
        (f'"{KEY_A}"', "GENREC_API_KEYS: the key holds a quote or a bracket; GENREC_API_KEYS "),
        (f"'{KEY_A}','{KEY_B}'", "not a JSON list nor quoted strings"),
    ],
)
def test_a_key_that_is_no_secret_is_refused_without_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(monkeypatch, tmp_path, GENREC_API_KEYS=value)
    problems = settings_problems(refused.value)
    assert len(problems) == 1 and expected in problems[0], problems
    for secret in [value, *value.replace("\t", ",").replace(" ", ",").split(",")]:
        if secret:
            assert secret not in problems[0] and secret not in str(refused.value), secret


def test_a_key_equal_to_the_admin_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An API key must not grant /admin: the two secrets must differ."""
    with pytest.raises(ValidationError) as refused:
        _settings(
            monkeypatch, tmp_path, GENREC_API_KEYS=f"{KEY_A},{KEY_B}", GENREC_ADMIN_TOKEN=KEY_B
        )
    (problem,) = settings_problems(refused.value)
    assert problem.startswith("GENREC_API_KEYS: a key equals GENREC_ADMIN_TOKEN"), problem
    assert KEY_B not in problem and KEY_B not in str(refused.value)
