"""A machine without ``wrk`` or a ``redis-server`` binary: the tests that run them are
skipped with the reason outside CI and fail under ``CI=true`` (README, "make test").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.conftest
from tests.conftest import REPO_ROOT, require_tool

#: One test of each module that starts one of the tools.
NEEDING_A_TOOL = [
    "tests/benchmarks/test_serve_bench_wrk.py::test_wrk_sends_the_python_clients_requests[constant]",
    "tests/app/test_frozen_redis.py::test_frozen_redis_is_bypassed_then_probed_and_used_again",
    "tests/app/test_integration.py::test_every_endpoint_answers_with_redis_down",
    "tests/app/test_fault_tolerance.py::test_acknowledged_writes_survive_redis_and_postgres_outages",
]


def test_tests_needing_a_missing_tool_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """The four tests in a pytest of their own whose PATH holds neither binary, CI unset."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(empty)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *NEEDING_A_TOOL],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "4 skipped" in output, output[-4000:]
    assert output.count("redis-server not found on PATH") == 3, output[-4000:]
    assert output.count("wrk not found on PATH") == 1, output[-4000:]


def test_a_missing_tool_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tests.conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match=r"wrk not found on PATH.*CI=true: required"):
        require_tool("wrk", "a test runs it")
    monkeypatch.setattr(tests.conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="wrk not found on PATH"):
        require_tool("wrk", "a test runs it")
