"""The Mult-VAE epoch profiler that docs/peers.md quotes runs and prints what it claims."""

from __future__ import annotations

import re

import pytest

from benchmarks.peers import profile_mult_vae


def test_prints_seconds_per_variant_and_a_shape_grouped_profile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--users", "60", "--items", "50", "--epochs", "2", "--variants", "shipped", "bf16"]
    assert profile_mult_vae.main([*argv, "--profile", "--profile-variant", "bf16"]) == 0
    out = capsys.readouterr().out
    seconds = re.findall(r"^\s*(shipped|bf16): ([0-9.]+) CPU s/epoch", out, re.MULTILINE)
    assert [name for name, _ in seconds] == ["shipped", "bf16"]
    assert all(float(value) > 0 for _, value in seconds)
    assert "aten::addmm" in out and "Input Shapes" in out  # the grouped profiler table
