"""A table the CLI prints to a pipe or a file is whole: rich assumed 80 columns when
stdout is not a terminal and shortened cells to fit ("2026-12-07T0…", "ndcg@10=0…"),
so ``genrec models list | grep`` and ``docker compose exec -T`` read cut dates and
metrics. (``CliRunner`` output is not a terminal, as a pipe is not.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app


def test_models_list_prints_every_cell_whole_when_piped(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    runner = CliRunner()
    for model in ("popularity", "ease"):
        trained = runner.invoke(app, ["train", "--model", model, "--data", str(env)])
        assert trained.exit_code == 0, trained.output
    listing = runner.invoke(app, ["models", "list"])
    assert listing.exit_code == 0, listing.output
    assert "…" not in listing.output, listing.output
    for model in ("popularity", "ease"):
        manifest = json.loads(
            (env.parent / "store" / model / "versions" / "1" / "manifest.json").read_text()
        )
        metrics = " ".join(f"{k}={v:.3f}" for k, v in list(manifest["metrics"].items())[:2])
        row = next(line for line in listing.output.splitlines() if line.startswith(f"│ {model} "))
        assert manifest["created_at"][:19] in row and metrics in row, listing.output
        assert f"{manifest['data']['source']} (" in row, row  # the data source, whole
