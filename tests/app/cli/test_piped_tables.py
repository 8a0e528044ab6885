"""A table the CLI prints to a pipe or a file is whole: rich assumed 80 columns when
stdout is not a terminal and shortened cells to fit ("2026-12-07T0…", "ndcg@10=0…"),
so ``genrec models list | grep`` and ``docker compose exec -T`` read cut dates and
metrics. The listing runs as its own process writing to a real pipe, without
``COLUMNS``: the consoles decide their width when ``app.cli.common`` is imported, and
inside the test process that import happened long before (under pytest-xdist a worker
has ``COLUMNS=80`` in its environment from the start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app

REPO = Path(__file__).resolve().parents[3]


def test_models_list_prints_every_cell_whole_when_piped(env: Path) -> None:
    runner = CliRunner()
    for model in ("popularity", "ease"):
        trained = runner.invoke(app, ["train", "--model", model, "--data", str(env)])
        assert trained.exit_code == 0, trained.output
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")])
    listing = subprocess.run(
        [sys.executable, "-m", "app.cli", "models", "list"],
        capture_output=True,  # a pipe: what `genrec models list | grep` writes to
        text=True,
        env=environ,
        cwd=REPO,
        timeout=120,
    )
    assert listing.returncode == 0, listing.stderr
    output = listing.stdout
    assert "…" not in output, output
    for model in ("popularity", "ease"):
        manifest = json.loads(
            (env.parent / "store" / model / "versions" / "1" / "manifest.json").read_text()
        )
        metrics = " ".join(f"{k}={v:.3f}" for k, v in list(manifest["metrics"].items())[:2])
        row = next(line for line in output.splitlines() if line.startswith(f"│ {model} "))
        assert manifest["created_at"][:19] in row and metrics in row, output
        assert f"{manifest['data']['source']} (" in row, row  # the data source, whole
