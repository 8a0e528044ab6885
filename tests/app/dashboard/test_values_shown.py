"""Values on the pages are printed for people, not as Python's reprs: a job's progress and
gate, a version's hyper-parameters, metrics and gate record, an item's attributes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.core.db import session_scope
from app.db_models import RetrainJob
from app.repository import NewItem, upsert_items
from models_store import ModelStore
from tests.app.conftest import ClientFactory, tiny_interactions
from tests.app.dashboard.job_rows import job_row
from tests.app.dashboard.login import log_in
from training.pipeline import save_trained, train_model

TOKEN = "dash-values-token-71d2"
#: What Python's reprs look like: none of it may reach a page.
REPRS = re.compile(r"\bTrue\b|\bFalse\b|\bNone\b|\{'|\['|': ")
NOW = datetime(2026, 12, 6, 22, 6, 35, tzinfo=UTC)


@pytest.fixture
def dash(make_client: ClientFactory) -> TestClient:
    client = make_client(admin_token=TOKEN, default_model="mult-vae")
    log_in(client, TOKEN)
    return client


def _text(html: str) -> str:
    """The page's text: tags dropped, so attributes (an exact value's tooltip) do not count."""
    return re.sub(r"<[^>]+>", " ", html)


def _add_jobs(client: TestClient) -> None:
    losses = {"loss": 701.7695007324219, "nll": 701.7695007324219, "kl": 0.0196, "beta": 2.5e-06}
    with session_scope(client.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        session.add(
            RetrainJob(
                kind="retrain",
                model="mult-vae",
                params={"epochs": 3},
                data="log+base",
                promote="auto",
                trigger="api",
                status="succeeded",
                attempts=1,
                max_attempts=3,
                progress={
                    "phase": "succeeded",
                    "epoch": 3,
                    "epochs": 3,
                    "losses": losses,
                    "value": 0.021821675585042808,
                },
                result_version="2",
                promoted=True,
                created_at=NOW,
                updated_at=NOW,
            )
        )
        session.add(
            RetrainJob(
                kind="tune",
                model="tune",
                params={},
                data="log",
                promote="auto",
                trigger="api",
                status="succeeded",
                attempts=1,
                max_attempts=3,
                progress={"best": {"model": "ease", "value": 0.5346026734456985, "trial": 3}},
                promoted=False,
                gate={"promote": False, "production_metrics": {"ndcg@10": 0.5007567767361684}},
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_jobs_print_progress_flags_and_kinds_for_people(dash: TestClient) -> None:
    _add_jobs(dash)
    html = dash.get("/dashboard/jobs/list").text
    text = _text(html)
    assert not REPRS.search(text), REPRS.search(text)
    retrain = html.split('data-job-id="1"')[1].split("</tr>")[0]
    assert "<small>(retrain)</small>" in retrain
    assert '<dt>loss</dt><dd><span title="701.7695007324219">701.8</span></dd>' in retrain
    assert "<dt>beta</dt><dd>2.5e-06</dd>" in retrain
    assert '<dt>value</dt><dd><span title="0.021821675585042808">0.02182</span></dd>' in retrain
    assert re.search(r"<td>yes</td>", retrain)  # promoted
    assert "<dt>created_at</dt><dd>2026-12-06T22:06:35Z</dd>" in retrain
    tune = html.split('data-job-id="2"')[1].split("</tr>")[0]
    assert "(tune)" not in tune  # the model column says "tune" once
    assert '<dt>model</dt><dd>ease</dd><dt>value</dt><dd><span title="0.5346026734456985">' in tune
    assert re.search(r"<td>no</td>", tune)


def test_a_running_job_whose_worker_stopped_says_so(dash: TestClient) -> None:
    """A killed worker's job read "running", progress and all, as if it were alive."""
    sessions = dash.app.state.services.sessions  # type: ignore[attr-defined]
    past = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    with session_scope(sessions) as session:
        for attempts, lease in ((1, past), (3, past), (1, datetime(2999, 1, 1, tzinfo=UTC))):
            session.add(
                job_row(
                    status="running",
                    worker_id="w",
                    attempts=attempts,
                    lease_expires_at=lease,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    html = dash.get("/dashboard/jobs/list").text
    rows = {n: html.split(f'data-job-id="{n}"')[1].split("</tr>")[0] for n in (1, 2, 3)}
    assert "the next free worker takes it over" in rows[1]
    assert "stopped on the last attempt" in rows[2]
    assert "worker stopped" not in rows[3]  # its lease runs: alive
    assert "<dt>stalled</dt>" not in html


def _gated_version(store_dir: Path) -> str:
    """A mult-vae version whose manifest records a promotion gate, as a retrain job leaves it."""
    torch.set_num_threads(1)
    data = tiny_interactions()
    result = train_model("mult-vae", data, {"epochs": 1, "hidden_dim": 16, "latent_dim": 8})
    gate = {
        "candidate": 0.34546378839391567,
        "higher_is_better": True,
        "production_metrics": {"ndcg@10": 0.5007567767361684, "recall@10": 0.38811880554575096},
        "production_version": "1",
        "promote": False,
        "tolerance": 0.001,
    }
    manifest = save_trained(
        ModelStore(store_dir), "mult-vae", result, data, "synthetic", training={"gate": gate}
    )
    return manifest.version


def test_version_pages_print_settings_counts_and_the_gate_for_people(
    dash: TestClient, store_dir: Path
) -> None:
    version = _gated_version(store_dir)
    page = dash.get(f"/dashboard/models/mult-vae/versions/{version}")
    assert page.status_code == 200
    text = _text(page.text)
    assert not REPRS.search(text), REPRS.search(text)
    assert "<dt>bf16</dt><dd>no</dd>" in page.text
    assert "<dt>click_threshold</dt><dd>–</dd>" in page.text
    assert "<dt>total_anneal_steps</dt><dd>200000</dd>" in page.text
    assert '<dt>production_metrics</dt><dd><dl class="kv"><dt>ndcg@10</dt>' in page.text
    assert "<dt>promote</dt><dd>no</dd>" in page.text
    # A rating model's counts are integers, not "80.0000".
    rating = dash.get("/dashboard/models/biased-mf/versions/1").text
    assert "<dt>n</dt><dd>80</dd>" in rating and "<dt>n_default</dt><dd>0</dd>" in rating
    assert "80.0000" not in dash.get("/dashboard/models").text


def test_item_attributes_are_listed_not_printed_as_a_list(dash: TestClient) -> None:
    with session_scope(dash.app.state.services.sessions) as session:  # type: ignore[attr-defined]
        upsert_items(
            session,
            [NewItem("3", "Item 3", None, {"genres": ["Comedy", "<x>"], "adult": False})],
            NOW,
        )
    page = dash.get("/dashboard/catalog/items/3").text
    assert "<dt>genres</dt><dd>Comedy, &lt;x&gt;</dd>" in page
    assert "<dt>adult</dt><dd>no</dd>" in page
    assert "yes, updated 2026-12-06T22:06:35Z" in page
    assert not REPRS.search(_text(page))
