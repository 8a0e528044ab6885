"""A version's page: its training curve as chart data and the tuning leaderboard of `genrec tune`."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from app.dashboard.formatting import show
from app.main import create_app
from models_store import ModelStore
from tests.app.conftest import embedded_settings, tiny_interactions
from training.pipeline import save_trained, train_model
from training.tuning.report import TrialRecord, leaderboard, tuning_report

TOKEN = "dash-version-token-3b0e"


def _segments(new: float, heavy: float) -> dict[str, object]:
    """A trial's per-segment record: 40 users with 1-4 interactions, 25 with 20-99."""
    return {
        "edges": [0, 1, 5, 20, 100],
        "segments": [
            {"label": "0", "users": 0, "metrics": {}},
            {"label": "1-4", "users": 40, "metrics": {"ndcg@10": new}},
            {"label": "5-19", "users": 0, "metrics": {}},
            {"label": "20-99", "users": 25, "metrics": {"ndcg@10": heavy}},
            {"label": "100+", "users": 0, "metrics": {}},
        ],
    }


def _report() -> dict[str, object]:
    """A tuning report as `genrec tune` writes it, from trial records of two models."""
    records = [
        TrialRecord(
            0,
            "mult-vae",
            {"epochs": 3},
            "complete",
            0.31,
            1.5,
            2.0,
            3,
            by_activity=_segments(0.12, 0.35),
        ),
        TrialRecord(
            1,
            "ease",
            {"l2": 50.0},
            "complete",
            0.27,
            0.2,
            2.5,
            None,
            by_activity=_segments(0.21, 0.28),
        ),
        TrialRecord(2, "mult-vae", {"epochs": 1}, "pruned", None, 0.4, 3.0, None, "pruned"),
    ]
    board = leaderboard(records, ["mult-vae", "ease"], higher_is_better=True)
    return tuning_report(
        task="top-k",
        metric="ndcg@10",
        higher_is_better=True,
        split={"holdout": 0.1},
        seed=0,
        budget_seconds=60.0,
        max_trials=None,
        seconds=3.2,
        study_name=None,
        board=board,
        records=records,
        dropped={
            "cf-nade": "model 'cf-nade' predicts explicit ratings; the training data is implicit"
        },
    )


@pytest.fixture(scope="module")
def tuned_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mult-vae v1 (3 epochs) carrying a tuning report, as `genrec tune --promote` leaves it."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tuned-store")
    store = ModelStore(root)
    data = tiny_interactions()
    result = train_model("mult-vae", data, {"epochs": 3, "hidden_dim": 16, "latent_dim": 8})
    manifest = save_trained(
        store, "mult-vae", result, data, "synthetic", training={"tuning": _report()}
    )
    store.promote("mult-vae", manifest.version)
    return root


@contextmanager
def _logged_in(store: Path, tmp_path: Path) -> Iterator[TestClient]:
    """A dashboard over ``store``, logged in with the admin token."""
    settings = embedded_settings(
        store_dir=store,
        database_url=f"sqlite:///{tmp_path}/dash.db",
        admin_token=TOKEN,
        default_model="mult-vae",
    )
    with TestClient(create_app(settings)) as client:
        nonce = re.search(r'name="nonce" value="([^"]+)"', client.get("/dashboard/login").text)
        assert nonce
        client.post("/dashboard/login", data={"token": TOKEN, "nonce": nonce.group(1)})
        yield client


@pytest.fixture
def dash(tuned_store: Path, tmp_path: Path) -> Iterator[TestClient]:
    with _logged_in(tuned_store, tmp_path) as client:
        yield client


def test_curve_chart_and_leaderboard(dash: TestClient) -> None:
    page = dash.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 200
    charts = [
        json.loads(raw)
        for raw in re.findall(
            r'<script type="application/json" id="curve-\d">(.*?)</script>', page.text
        )
    ]
    # One chart per quantity, or per quantities of one unit and scale (test_charts.py).
    assert [c["title"] for c in charts] == [
        "training: loss, nll",
        "training: kl",
        "training: beta",
        "validation: ndcg@10, ndcg@20, recall@10, recall@20",
    ]
    assert all(c["x"] == [1, 2, 3] and c["x_integer"] for c in charts)
    validation = charts[-1]["series"]["ndcg@10"]
    assert len(validation) == 3 and all(isinstance(v, float) for v in validation)
    assert charts[-1]["y_label"] == "score (0 to 1)"
    board = page.text.split('data-testid="leaderboard"')[1]
    rows = re.findall(r"<tr><td>(\d)</td><td>([\w-]+)</td>", board)
    assert rows == [("1", "mult-vae"), ("2", "ease")]  # best first
    assert "0.3100" in board and "1 complete, 1 pruned" in board
    dropped = page.text.split('data-testid="dropped"')[1].split("</ul>")[0]
    assert "<li>cf-nade: model &#39;cf-nade&#39; predicts explicit ratings;" in dropped
    assert "genrec tune" in dash.get("/dashboard/models").text
    # The overall winner (mult-vae) is not the best for the new users (ease).
    best = page.text.split('data-testid="best-by-activity"')[1].split("</table>")[0]
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td class="n">(\d+)</td><td>([\w-]+)</td>'
        r'<td class="n">([^<]+)</td>',
        best,
    )
    assert rows == [("1-4", "40", "ease", "0.21"), ("20-99", "25", "mult-vae", "0.35")]
    assert "noisy" in best


def test_unknown_version_is_a_404_page(dash: TestClient) -> None:
    page = dash.get("/dashboard/models/mult-vae/versions/9")
    assert page.status_code == 404 and "9" in page.text


@pytest.fixture
def copied_dash(tuned_store: Path, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The dashboard over a copy of the tuned store, which a test may break."""
    root = tmp_path / "store"
    shutil.copytree(tuned_store, root)
    with _logged_in(root, tmp_path) as client:
        yield client, root


def test_a_malformed_version_name_is_a_404_page(dash: TestClient) -> None:
    page = dash.get("/dashboard/models/mult-vae/versions/v1")
    assert page.status_code == 404
    assert "No such version" in page.text


def test_a_corrupt_version_is_a_500_page_naming_its_file_in_the_store(
    copied_dash: tuple[TestClient, Path],
) -> None:
    client, root = copied_dash
    (root / "mult-vae" / "versions" / "1" / "manifest.json").write_text("{}")
    page = client.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 500
    assert "This version cannot be read" in page.text
    assert "mult-vae/versions/1/manifest.json" in page.text
    assert str(root) not in page.text
    assert 'href="/dashboard/models#model-mult-vae"' in page.text
    assert page.headers["x-frame-options"] == "DENY"


def test_an_unreadable_alias_file_still_shows_the_version(
    copied_dash: tuple[TestClient, Path],
) -> None:
    client, root = copied_dash
    (root / "mult-vae" / "aliases" / "production.json").write_text("{}")
    page = client.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 200
    problem = page.text.split('data-testid="aliases-unreadable"')[1].split("</p>")[0]
    assert "mult-vae/aliases/production.json" in problem
    assert str(root) not in page.text
    assert "Offline metrics" in page.text and "mult-vae v1" in page.text


def test_the_page_says_why_a_refitted_models_figure_is_not_the_curves(
    tuned_store: Path, tmp_path: Path
) -> None:
    """i-cf-nade's offline figures are measured after its post-fit refit, so the curve's
    RMSE at the kept epoch is another number; the page says which one is served. A model
    without a post-fit step (the tuned store's mult-vae) shows no such note."""
    root = tmp_path / "store"
    shutil.copytree(tuned_store, root)
    settings = {"hidden": 16, "epochs": 2, "patience": None, "fold_in_steps": 10}
    data = tiny_interactions()
    saved = save_trained(
        ModelStore(root), "i-cf-nade", train_model("i-cf-nade", data, settings), data, "synthetic"
    )
    kept = saved.training["curve"][saved.training["best_epoch"] - 1]["metrics"]["rmse"]
    assert abs(kept - saved.metrics["rmse"]) > 1e-6  # not vacuous: the refit moved it
    with _logged_in(root, tmp_path) as client:
        note = client.get(f"/dashboard/models/i-cf-nade/versions/{saved.version}").text
        assert 'data-testid="kept-epoch-gap"' in note
        text = note.split('data-testid="kept-epoch-gap">')[1].split("</p>")[0]
        assert f'rmse <span title="{saved.metrics["rmse"]!r}">' in text
        assert f'reads <span title="{kept!r}">' in text
        assert f"at the kept epoch {saved.training['best_epoch']}." in text
        assert "kept-epoch-gap" not in client.get("/dashboard/models/mult-vae/versions/1").text


def test_the_offline_metrics_show_each_user_activity_segment_with_its_user_count(
    dash: TestClient, tuned_store: Path
) -> None:
    """Users of the tiny data rate 12 items and train on 10 or 11: all in 5-19, whose
    figures are then the overall ones; the other segments are listed, empty."""
    manifest = ModelStore(tuned_store).manifest("mult-vae", "1")
    record = manifest.training["by_activity"]
    users = {s["label"]: s["users"] for s in record["segments"]}
    page = dash.get("/dashboard/models/mult-vae/versions/1").text
    table = page.split('data-testid="by-activity"')[1].split("</table>")[0]
    assert "<caption>By user activity:" in table and "noisy" in table
    header = re.findall(r'<th scope="col">([^<]+)</th>', table)
    assert header == [
        "Interactions per user",
        "Users",
        "ndcg@10",
        "ndcg@20",
        "recall@10",
        "recall@20",
    ]
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th><td class="n">(\d+)</td>', table)
    assert rows == [(label, str(users[label])) for label in ("0", "1-4", "5-19", "20-99", "100+")]
    assert users["5-19"] > 0 and users["1-4"] == 0
    ndcg = manifest.metrics["ndcg@10"]
    busy = table.split('<th scope="row">5-19</th>')[1].split("</tr>")[0]
    assert f'<td class="n">{show(ndcg)}</td>' in busy  # the page's own number format
    empty = table.split('<th scope="row">1-4</th>')[1].split("</tr>")[0]
    assert empty.count('<td class="n">–</td>') == 4


@pytest.mark.parametrize("record", [None, {"edges": [0, 1], "segments": [{"label": "0"}]}])
def test_a_version_without_a_readable_segment_record_shows_its_page_without_the_table(
    copied_dash: tuple[TestClient, Path], record: object
) -> None:
    """Versions written before the figures were recorded have no ``by_activity``."""
    client, root = copied_dash
    path = root / "mult-vae" / "versions" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    if record is None:
        del manifest["training"]["by_activity"]
    else:
        manifest["training"]["by_activity"] = record
    path.write_text(json.dumps(manifest))
    page = client.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 200
    assert "Offline metrics" in page.text and 'data-testid="by-activity"' not in page.text


def test_a_tuning_report_without_per_segment_bests_shows_no_such_table(
    copied_dash: tuple[TestClient, Path],
) -> None:
    """Reports written before it was recorded, or with a row that does not read."""
    client, root = copied_dash
    path = root / "mult-vae" / "versions" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["training"]["tuning"]["best_by_activity"] = [{"label": "1-4", "users": "x"}]
    path.write_text(json.dumps(manifest))
    page = client.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 200 and 'data-testid="leaderboard"' in page.text
    assert "best-by-activity" not in page.text
    del manifest["training"]["tuning"]["best_by_activity"]
    path.write_text(json.dumps(manifest))
    page = client.get("/dashboard/models/mult-vae/versions/1")
    assert page.status_code == 200 and "best-by-activity" not in page.text
