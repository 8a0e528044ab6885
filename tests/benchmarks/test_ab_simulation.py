"""The simulation's in-process A/A replay on synthetic outcomes (the real run, with
MovieLens over HTTP, is not in the suite: docs/experiments.md has its figures)."""

from __future__ import annotations

import numpy as np

from benchmarks.ab_simulation import aa_runs


def test_aa_replay_counts_reads_through_the_results_code() -> None:
    rng = np.random.default_rng(0)
    outcomes = {}
    for n in range(400):
        clicks = int(rng.binomial(10, 0.2))
        outcomes[f"u{n}"] = (clicks, int(rng.binomial(clicks, 0.2)), 10)
    figures = aa_runs(outcomes, runs=10, peek_every=100, mixing_sd=0.02, seed=0)
    assert figures["runs"] == 10
    assert figures["declared_msprt"] <= 1  # no difference: (almost) never declared
    assert figures["declared_msprt"] <= figures["declared_fixed_horizon_z"] + 1
    assert 0 <= figures["median_final_p"] <= 1
    # the conversion rate's test is read the same way, and alone or with the CTR's
    assert figures["declared_msprt_conversion"] <= 1
    assert (
        figures["declared_msprt_conversion"] <= figures["declared_fixed_horizon_z_conversion"] + 1
    )
    assert 0 <= figures["median_final_p_conversion"] <= 1
    assert (
        max(figures["declared_msprt"], figures["declared_msprt_conversion"])
        <= figures["declared_msprt_either"]
        <= figures["declared_msprt"] + figures["declared_msprt_conversion"]
    )
