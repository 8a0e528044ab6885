"""Explore's "where would a new item land": a tiny ConvMF places pasted text, nothing saved."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from models_store import ModelStore
from tests.app.catalog_data import TINY_CONVMF, TextRatings, plot, text_ratings
from tests.app.conftest import embedded_settings
from training.pipeline import train_and_save

TOKEN = "dash-text-token-77aa"


@pytest.fixture(scope="module")
def data() -> TextRatings:
    return text_ratings(seed=0)


@pytest.fixture(scope="module")
def convmf_store(data: TextRatings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dashboard-convmf")
    store = ModelStore(root)
    train_and_save(store, "convmf", data.train, dict(TINY_CONVMF), source="text", promote=True)
    train_and_save(store, "popularity", data.train, {}, source="text", promote=True)
    return root


@pytest.fixture
def dash(convmf_store: Path, tmp_path: Path) -> TestClient:
    settings = embedded_settings(
        store_dir=convmf_store,
        database_url=f"sqlite:///{tmp_path}/dash.db",
        admin_token=TOKEN,
        default_model="convmf",
    )
    with TestClient(create_app(settings)) as client:
        form = client.get("/dashboard/login").text
        nonce = re.search(r'name="nonce" value="([^"]+)"', form)
        assert nonce
        client.post("/dashboard/login", data={"token": TOKEN, "nonce": nonce.group(1)})
        yield client


def _topic_of(item_id: str) -> int:
    return int(item_id[1:]) % 2  # catalog_data: item i{j} is about topic j % 2


def test_pasted_text_lands_among_its_topic_and_is_not_saved(dash: TestClient) -> None:
    page = dash.get("/dashboard/explore")
    assert page.status_code == 200
    select = page.text.split('id="text-model"')[1].split("</select>")[0]
    options = re.findall(r'<option value="([^"]+)"', select)
    assert options == ["convmf"]  # popularity cannot place text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    for topic in (0, 1):
        text = plot(topic, np.random.default_rng(100 + topic))
        answer = dash.post(
            "/dashboard/explore/text",
            data={
                "model": "convmf",
                "title": "A new one",
                "text": text,
                "csrf_token": csrf.group(1),
            },
        )
        assert answer.status_code == 200, answer.text[:2000]
        placed = answer.text.split('data-testid="placement"')[1]
        neighbours = re.findall(r"id (i\d\d) · score", placed)
        assert len(neighbours) == 10
        same = sum(_topic_of(i) == topic for i in neighbours[:5])
        assert same >= 4, (topic, neighbours)
    # Nothing was added: the preview item is in no catalog and no served model.
    assert dash.get("/v1/items/__dashboard_preview__").status_code == 404
    assert dash.get("/v1/items/__dashboard_preview__/similar").status_code == 404


def test_placing_needs_text_and_a_text_aware_model(dash: TestClient) -> None:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', dash.get("/dashboard/explore").text)
    assert csrf
    empty = dash.post("/dashboard/explore/text", data={"text": " ", "csrf_token": csrf.group(1)})
    assert empty.status_code == 422
    wrong = dash.post(
        "/dashboard/explore/text",
        data={"model": "popularity", "text": "stars", "csrf_token": csrf.group(1)},
    )
    assert wrong.status_code == 422 and "cannot place" in wrong.text


def test_the_text_field_stops_at_the_servers_limit(dash: TestClient) -> None:
    from app.dashboard.pages.explore import MAX_TEXT

    field = dash.get("/dashboard/explore").text.split('id="text-text"')[1].split(">")[0]
    assert f'maxlength="{MAX_TEXT}"' in field


def test_removed_items_are_not_placed_next_to_the_text(dash: TestClient) -> None:
    page = dash.get("/dashboard/explore")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    form = {
        "model": "convmf",
        "title": "A new one",
        "text": plot(0, np.random.default_rng(100)),
        "csrf_token": csrf.group(1),
    }

    def neighbours() -> list[str]:
        answer = dash.post("/dashboard/explore/text", data=form)
        assert answer.status_code == 200, answer.text[:2000]
        return re.findall(r"id (i\d\d) · score", answer.text.split('data-testid="placement"')[1])

    nearest = neighbours()[:3]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for item_id in nearest:
        assert dash.put(f"/v1/items/{item_id}", json={}, headers=auth).status_code == 201
        assert dash.delete(f"/v1/items/{item_id}", headers=auth).status_code == 200
    placed = neighbours()
    assert len(placed) == 10 and not set(nearest) & set(placed), (nearest, placed)


def test_a_text_the_browser_allowed_is_not_refused_for_its_line_breaks(dash: TestClient) -> None:
    """``maxlength`` counts a line break as one character, but the browser sends it as CRLF
    (two): a text at the limit with line breaks must still be accepted, and placed with
    LF line breaks (as the API would store it)."""
    from app.dashboard.pages.explore import MAX_TEXT

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', dash.get("/dashboard/explore").text)
    assert csrf
    paragraph = plot(0, np.random.default_rng(7))
    lines = (paragraph + "\n") * (MAX_TEXT // (len(paragraph) + 1) + 1)
    typed = lines[:MAX_TEXT]  # what the browser's field holds: MAX_TEXT characters
    assert "\n" in typed and len(typed) == MAX_TEXT
    sent = typed.replace("\n", "\r\n")  # what its form submission carries
    answer = dash.post(
        "/dashboard/explore/text",
        data={"model": "convmf", "text": sent, "csrf_token": csrf.group(1)},
    )
    assert answer.status_code == 200, answer.text[:2000]
    assert 'data-testid="placement"' in answer.text
    shown = answer.text.split('id="text-text"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert "\r" not in shown and shown.count("\n") == typed.count("\n")


def test_lone_carriage_returns_count_as_line_breaks() -> None:
    from app.dashboard.forms import form_text

    assert form_text("a\r\nb\rc\nd") == "a\nb\nc\nd"


def test_a_text_over_one_mib_gets_the_pages_message_not_a_400(dash: TestClient) -> None:
    """Starlette refuses a form field over 1 MiB with a bare 400 ("Field exceeded maximum
    size"), below the dashboard's body limit: a text over MAX_TEXT characters that large
    got that instead of the page's own 422."""
    from app.dashboard import MAX_FORM_BYTES
    from app.dashboard.pages.explore import MAX_TEXT

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', dash.get("/dashboard/explore").text)
    assert csrf
    ascii_text = "a" * (2**20 + 1000)  # 1 byte a character, as sent either way
    wide_text = "\U0001f600" * (2**20 // 12 + 1000)  # 4 bytes, 12 once %-encoded
    form = {"model": "convmf", "csrf_token": csrf.group(1)}
    answers = [
        dash.post("/dashboard/explore/text", data={**form, "text": ascii_text}),
        dash.post("/dashboard/explore/text", data={**form, "text": wide_text}),
        dash.post(  # multipart: a file makes the client send the form as one
            "/dashboard/explore/text",
            data={**form, "text": ascii_text},
            files={"unused": ("f", b"")},
        ),
    ]
    for answer in answers:
        assert 2**20 < int(answer.request.headers["content-length"]) < MAX_FORM_BYTES
        assert answer.status_code == 422, answer.text[:500]
        assert f"1 to {MAX_TEXT} characters" in answer.text
