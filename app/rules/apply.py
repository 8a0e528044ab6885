"""Applying compiled rules to a batch of scores: one mask and one offset per batch.

``apply_rules`` is a separate step between scoring and top-k, so whatever
produces the (B, I) scores (the exact scorer, or a retrieval stage that
re-scores candidates and masks the rest with -inf) composes with it.

Boosts are **additive, in units of the row's score spread**: an item that
meets boost rules with weights w1, w2, ... gets

    score + (w1 + w2 + ...) * spread,   spread = std of the row's scores over all items

(the population standard deviation of the model's scores for this user,
before any masking; 1 when that is 0 or not finite). Additive because model
scores have any sign (a logit, a log-probability, a rating): multiplying a
negative score by 1.5 would bury it. In units of the spread because raw
scales differ by model and user: ``^0.5`` moves an item up by half a
standard deviation of this user's scores whatever the model, so a promoted
segment moves up without displacing everything (a weight of 3 or more
puts it ahead of nearly all of the list). Responses give the spread used
(``boost_unit``) and the boosted scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from app.rules.compile import RulePlan


def apply_rules(
    scores: Tensor, plans: Sequence[RulePlan | None]
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(boosted scores (B, I), drop mask (B, I) or None, spread per row (B,) or None).

    Rows without a plan are untouched; one stacked mask and one stacked offset
    cover every row that has one.
    """
    if not any(plans):
        return scores, None, None
    device = scores.device
    drop = None
    kept = [b for b, plan in enumerate(plans) if plan is not None and plan.keep is not None]
    if kept:
        drop = torch.zeros(scores.shape, dtype=torch.bool, device=device)
        rows = torch.tensor(kept, device=device)
        drop[rows] = ~torch.stack([_part(plans[b], "keep") for b in kept])
    boosted = [b for b, plan in enumerate(plans) if plan is not None and plan.offset is not None]
    units = None
    if boosted:
        rows = torch.tensor(boosted, device=device)
        part = scores[rows]
        spread = _spread(part)
        offsets = torch.stack([_part(plans[b], "offset") for b in boosted])
        scores = scores.clone()
        scores[rows] = part + spread * offsets
        units = torch.full((scores.shape[0],), float("nan"), device=device)
        units[rows] = spread.squeeze(1)
    return scores, drop, units


def _part(plan: RulePlan | None, name: str) -> Tensor:
    value = getattr(plan, name, None)
    assert isinstance(value, Tensor)
    return value


def _spread(rows: Tensor) -> Tensor:
    """(B, 1): each row's population std, 1 where that is 0 or not finite (see module doc)."""
    spread = rows.float().std(dim=1, correction=0, keepdim=True)
    return torch.where(torch.isfinite(spread) & (spread > 0), spread, torch.ones_like(spread))


def boost_unit(scores: Tensor, plan: RulePlan | None) -> float | None:
    """The spread one (I,) row's boosts are scaled by; None when the plan has no boost."""
    if plan is None or plan.offset is None:
        return None
    return float(_spread(scores.unsqueeze(0))[0, 0])
