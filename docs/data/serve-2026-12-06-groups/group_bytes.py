"""Bytes a boosted or filtered plan's offset groups hold at 1,000,000 items, beside the
bytes the rule compiler's cache counts for the plan itself (``_plan_bytes``).

    PYTHONPATH=/tmp/before .venv/bin/python docs/data/serve-2026-12-06-groups/group_bytes.py
    PYTHONPATH=$PWD .venv/bin/python docs/data/serve-2026-12-06-groups/group_bytes.py
"""

import inspect

import numpy as np
import torch

from app.rules.compile import RulePlan, _plan_bytes
from app.serving import ann_rules

N = 1_000_000
WHOLE_UP_TO = 10_000  # GENREC_ANN_MAX_CANDIDATES's default
rng = np.random.default_rng(0)
fifth = torch.as_tensor(rng.random(N) < 0.2)
half = torch.as_tensor(rng.random(N) < 0.5)
tenth = torch.as_tensor(rng.random(N) < 0.1)
plans = {
    "boost a fifth": RulePlan(keep=None, drop=None, offset=fifth.float() * 0.5),
    "filter a half": RulePlan(keep=half, drop=~half, offset=None),
    "filter a half, boost a fifth": RulePlan(keep=half, drop=~half, offset=fifth.float() * 0.5),
    "two boosts": RulePlan(keep=None, drop=None, offset=fifth.float() * 0.5 + tenth.float()),
}
takes_limit = "whole_up_to" in inspect.signature(ann_rules.offset_groups).parameters
print(f"{N:,} items; groups of at most {WHOLE_UP_TO:,} taken whole")
print("| plan | groups | plan bytes (counted) | group bytes (not counted) |")
print("|---|---|---|---|")
for name, plan in plans.items():
    if takes_limit:
        groups = ann_rules.offset_groups(plan, WHOLE_UP_TO)
        held = sum(g.nbytes for g in groups)
    else:
        groups = ann_rules.offset_groups(plan)
        held = sum(g.items.nbytes + g.bitmap.nbytes for g in groups)
    print(
        f"| {name} | {len(groups)} | {_plan_bytes(plan) / 2**20:.2f} MiB | {held / 2**20:.2f} MiB |"
    )
