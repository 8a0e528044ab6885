"""``.gitignore``: what a checkout makes beside the sources stays out of ``git status``,
whether it is a folder or a link to one (a venv or a model store kept on another disk)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

#: Paths a checkout makes, each of which a user may well make a symlink to a folder.
LINKABLE = [
    ".venv",
    ".lock-venv",
    "benchmarks/peers/.venv-peer",
    "store",
    "var",
    "scratch",
    "benchmarks/out",
]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("as_link", [False, True], ids=["folder", "symlink"])
def test_generated_paths_are_ignored_as_folders_and_as_links(tmp_path: Path, as_link: bool) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(REPO_ROOT / ".gitignore", repo / ".gitignore")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in LINKABLE:
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if as_link:
            path.symlink_to(elsewhere, target_is_directory=True)
        else:
            path.mkdir()
            (path / "inside").write_text("x")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    untracked = [line[3:] for line in status.stdout.splitlines() if line[3:] != ".gitignore"]
    assert untracked == [], untracked
