"""benchmarks/train_speed.py's profile of one epoch: the table a lent GPU's session reads."""

from __future__ import annotations

from benchmarks.train_speed import profiled_epoch, synthetic_clicks


def test_the_profile_names_the_epoch_and_its_operators() -> None:
    table = profiled_epoch(synthetic_clicks(300, 200, 3000), "cpu")
    heading, *rest = table.splitlines()
    assert heading.startswith("# profiled epoch: ") and " s wall" in heading
    body = "\n".join(rest)
    assert "aten::addmm" in body or "aten::mm" in body  # the dense layers were profiled
    assert "Self CPU time total" in body
