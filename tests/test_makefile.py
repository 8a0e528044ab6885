"""``make run MODEL=name`` trains that model and serves it as the default (README)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("model", [None, "ease"])
def test_make_run_serves_the_model_it_trains(model: str | None) -> None:
    args = ["make", "-n", "run", *([f"MODEL={model}"] if model else [])]
    dry = subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    train = [line for line in lines if " train " in line]
    serve = [line for line in lines if " serve " in line]
    expected = model or "mult-vae"
    assert f"--model {expected} " in train[0], train
    assert len(serve) == 1 and serve[0].startswith(f"GENREC_DEFAULT_MODEL={expected} "), serve
