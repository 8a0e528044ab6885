"""``make run MODEL=name`` trains that model and serves it as the default (README)."""

from __future__ import annotations

import re
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


def test_readme_commands_naming_a_data_set_get_the_makefiles_data_dir() -> None:
    """The Makefile exports ``GENREC_DATA_DIR`` to make's own commands only: a README command
    run in the shell after ``make run`` must set it itself, to the same folder, or it fails
    with "data set not found" on a machine whose data lies beside the checkout."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    found = re.search(r"\$\(wildcard (\S+)/ml-100k/u\.data\)", makefile)
    assert found is not None, "the Makefile no longer looks for the data beside the checkout"
    data_dir = found.group(1)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.strip()
        for line in readme.splitlines()
        if re.match(r"\s*(\S+=\S+\s+)*\.venv/bin/genrec items import ml-100k", line)
    ]
    assert commands, "the README's Quickstart no longer imports the demo catalog"
    for command in commands:
        assert command.startswith(f"GENREC_DATA_DIR={data_dir} "), command
