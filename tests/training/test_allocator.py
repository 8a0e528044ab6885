"""The training allocator setting: applied once, reported honestly, opt-out respected."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from training import allocator


def _in_fresh_process(code: str, env_extra: dict[str, str] | None = None) -> str:
    import os

    env = {**os.environ, **(env_extra or {})}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


#: ``mallopt`` exists only in glibc; elsewhere the setting must report that it did nothing.
ON_GLIBC = platform.libc_ver()[0] == "glibc"


def test_applies_once_where_glibc_is_and_training_applies_it() -> None:
    code = (
        "from training.allocator import keep_freed_memory\n"
        "from training import allocator\n"
        "before = allocator._applied\n"
        "first = keep_freed_memory(); again = keep_freed_memory()\n"
        "print(before, first, again)\n"
    )
    assert _in_fresh_process(code) == f"None {ON_GLIBC} {ON_GLIBC}"
    fit = (
        "from training import allocator\n"
        "from training.trainer import EpochLoop, fit_epochs\n"
        "loop = EpochLoop(lambda e: {'loss': 0.0}, lambda: None, lambda: {}, lambda s: None)\n"
        "fit_epochs(loop, 1)\n"
        "print(allocator._applied)\n"
    )
    assert _in_fresh_process(fit) == str(ON_GLIBC)


def test_opt_out_leaves_malloc_alone() -> None:
    code = "from training.allocator import keep_freed_memory; print(keep_freed_memory())"
    assert _in_fresh_process(code, {"GENREC_KEEP_FREED_MEMORY": "0"}) == "False"


def test_the_result_is_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_applied", True)
    assert allocator.keep_freed_memory() is True
