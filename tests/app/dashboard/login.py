"""Logging a TestClient in to the dashboard (for the page tests that render content)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def log_in(client: TestClient, token: str) -> None:
    """Post the login form with its nonce; the client keeps the session cookie."""
    nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/dashboard/login").text)
    assert nonce, "no login form"
    answer = client.post(
        "/dashboard/login", data={"token": token, "nonce": nonce.group(1)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text[:500]
