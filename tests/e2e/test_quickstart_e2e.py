"""README's Quickstart, exactly as written, against what ``make run`` starts (issue 16.11).

The Makefile's ``run`` recipe is read, not restated: its ``genrec train`` lines
run with ``$(MODEL)`` and ``$(DATA)`` filled in (the data: ML-100K users
1..200 as a CSV, so training takes seconds), then ``genrec serve`` starts in
embedded mode as ``make run`` does (SQLite log, in-process cache), on a free
port. Every ``curl`` of the README's Quickstart block then runs in a shell with
only the address changed, and must answer 2xx with the body it documents.
The store starts as the seeded one (a production ``mult-vae``): the run recipe
must still provide the rating model the prediction call names.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
README_ADDRESS = "http://127.0.0.1:8000"


def make_run_train_lines(makefile: Path, data: str) -> list[list[str]]:
    """``genrec train`` argument lists of the Makefile's ``run`` recipe, variables filled in."""
    text = makefile.read_text()
    defaults = dict(re.findall(r"^(MODEL|DATA)\s*\?=\s*(\S+)", text, flags=re.M))
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert recipe is not None, "Makefile has no run recipe"
    lines = []
    for line in recipe.group(1).splitlines():
        words = line.strip().split()
        if words[:2] != ["$(BIN)/genrec", "train"]:
            continue
        filled = [
            {"$(MODEL)": defaults["MODEL"], "$(DATA)": data}.get(word, word) for word in words[1:]
        ]
        lines.append(filled)
    return lines


def make_run_serve_env(makefile: Path) -> dict[str, str]:
    """The ``VAR=value`` words before ``genrec serve`` in the ``run`` recipe, ``$(MODEL)`` filled."""
    text = makefile.read_text()
    model = re.search(r"^MODEL\s*\?=\s*(\S+)", text, flags=re.M)
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", text, flags=re.M)
    assert model is not None and recipe is not None, "Makefile has no MODEL or no run recipe"
    for line in recipe.group(1).splitlines():
        words = line.strip().split()
        if "$(BIN)/genrec" in words and words[words.index("$(BIN)/genrec") + 1] == "serve":
            prefix = words[: words.index("$(BIN)/genrec")]
            return dict(w.replace("$(MODEL)", model.group(1)).split("=", 1) for w in prefix)
    raise AssertionError("the run recipe starts no genrec serve")


def quickstart_commands(readme: Path) -> list[str]:
    """The shell commands of README's Quickstart block (continuation lines joined)."""
    text = readme.read_text()
    block = re.search(r"## Quickstart\s*\n+```sh\n(.*?)```", text, flags=re.S)
    assert block is not None, "README has no Quickstart sh block"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if current.count("'") % 2 == 0 and not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    assert not current, f"unterminated command in the Quickstart block: {current!r}"
    return commands


def test_readme_quickstart_works_after_make_run(
    seeded_store: Path, base_csv: Path, data_dir: Path, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    shutil.copytree(seeded_store, store_dir)
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GENREC_")},
        # make run: embedded SQLite log and in-process cache, default settings otherwise
        "GENREC_DATABASE_URL": f"sqlite:///{tmp_path}/genrec.db",
        "GENREC_STORE_DIR": str(store_dir),
        # where the MovieLens files are (the Makefile exports it when ../shared/data
        # holds them; elsewhere it is set, or the files are in the download cache)
        "GENREC_DATA_DIR": str(data_dir),
        "OMP_NUM_THREADS": "1",
        **make_run_serve_env(REPO / "Makefile"),  # GENREC_DEFAULT_MODEL=$(MODEL)
    }
    stack = Stack(env=env, store_dir=store_dir, logs=logs)
    try:
        for args in make_run_train_lines(REPO / "Makefile", str(base_csv)):
            proc = stack.start(f"train-{args[args.index('--model') + 1]}", *args)
            assert proc.wait(300) == 0, proc.output()[-4000:]
        stack.serve()
        answers = []
        imported = False
        for command in quickstart_commands(REPO / "README.md"):
            words = shlex.split(command)
            assignments = list(itertools.takewhile(lambda w: "=" in w, words))
            if words[len(assignments)] == ".venv/bin/genrec":  # as typed in the checkout
                args = words[len(assignments) + 1 :]
                proc = stack.start("quickstart-" + args[0], *args, **_as_typed(assignments))
                assert proc.wait(120) == 0, proc.output()[-4000:]
                imported = True
                continue
            # After an import the server sees the catalog at its next poll
            # (GENREC_RELOAD_INTERVAL_S); a rule naming its attributes waits for it.
            answers.append(_curl(command, stack.base_url, patience_s=20 if imported else 0))
    finally:
        for proc in stack.procs:
            proc.kill()
        for proc in stack.procs:
            proc.popen.wait(10)
    assert len(answers) == 7, [a[0] for a in answers]
    for command, status, body in answers:
        assert 200 <= status < 300, (command, status, body)
    by_path: dict[str, Any] = {}
    for command, _, body in answers:  # the first call of each path (the rules one repeats one)
        by_path.setdefault(_path(command), body)
    assert len(by_path["/v1/users/1/recommendations"]["items"]) == 10
    assert by_path["/v1/interactions"] == {"accepted": 2}
    folded = by_path["/v1/users/new-user/recommendations"]
    assert folded["fallback"] is False and len(folded["items"]) == 5
    predictions = by_path["/v1/predictions"]
    assert predictions["model"] == "biased-mf"
    assert [(p["item_id"], p["fallback"]) for p in predictions["predictions"]] == [
        ("50", False),
        ("172", False),
    ]
    assert len(by_path["/v1/items/50/similar"]["items"]) == 5
    ruled = [body for command, _, body in answers if "filter=" in command]
    assert len(ruled) == 1 and len(ruled[0]["items"]) == 10, ruled
    assert ruled[0]["boost_unit"] is not None and ruled[0].get("short_by") is None, ruled
    assert "Traceback" not in stack.all_output()


def _as_typed(assignments: list[str]) -> dict[str, str]:
    """The ``NAME=value`` words before a README command, as the shell in the checkout would
    set them: a relative path is the checkout's. One naming a path that is not there (a
    checkout without ``../shared/data`` beside it, where the product falls through to its
    download cache) is left to the test's own setting, which says where the files are."""
    typed = {}
    for word in assignments:
        name, _, value = word.partition("=")
        path = (REPO / value).resolve() if value.startswith(".") else None
        if path is None:
            typed[name] = value
        elif path.exists():
            typed[name] = str(path)
    return typed


def _curl(command: str, base_url: str, patience_s: float = 0) -> tuple[str, int, Any]:
    """Run one README command against ``base_url``; (command, HTTP status, JSON body).

    With ``patience_s``, a 422 is retried until then (the catalog not polled yet).
    """
    assert command.startswith("curl "), command
    command = command.replace(README_ADDRESS, base_url)
    deadline = time.monotonic() + patience_s
    while True:
        # The status goes on a last line of its own; the command is otherwise as written.
        run = subprocess.run(
            ["bash", "-c", "curl -w '\\n%{http_code}' " + command.removeprefix("curl ")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, (command, run.stderr)
        body, _, status = run.stdout.rpartition("\n")
        if int(status) != 422 or time.monotonic() >= deadline:
            return command, int(status), json.loads(body)
        time.sleep(0.5)


def _path(command: str) -> str:
    match = re.search(r"https?://[^/]+(/[^?' ]*)", command)
    assert match is not None, command
    return match.group(1)
