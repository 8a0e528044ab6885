"""Memory the rule compiler's caches hold at a million items, after N distinct rules.

A stand-in model of 1,000,000 items (1,682 with a year, as ML-100K's), and N
distinct filter + boost rules (``year>=Y&boost=year<=Y^1``, Y varying, as a
price threshold in a query string would); prints the process's RSS growth and
what the caches hold. Run with the code to measure first on ``PYTHONPATH``:

    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-05-ann-boosts/plan_cache_memory.py 600
"""

from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

import torch

from app.rules.catalog import AttributeIndex
from app.rules.compile import RuleCompiler
from app.rules.request import rules_from_query


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


n_rules = int(sys.argv[1]) if len(sys.argv) > 1 else 600
ids = [str(i) for i in range(1, 1_000_001)]
index = AttributeIndex()
index.update((str(i), {"year": 1900 + i % 100}) for i in range(1, 1683))
model = SimpleNamespace(
    name="m", revision="1", item_ids=ids, n_items=len(ids), device=torch.device("cpu")
)
compiler = RuleCompiler(index)
compiler.plan(model, rules_from_query(["year>=1900"], None, None, None))  # the item table, once
gc.collect()
start = rss_mb()
for n in range(n_rules):
    y = 1900 + n % 100
    compiler.plan(
        model, rules_from_query([f"year>={y}", f"year>={n}"], [f"year<={y}^1"], None, None)
    )
gc.collect()
plans = compiler._plans
print(
    f"{n_rules} distinct rules at {len(ids):,} items: RSS +{rss_mb() - start:,.0f} MB; "
    f"plans cached {len(plans)}, masks cached {len(compiler._masks)}"
)
