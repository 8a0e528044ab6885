"""A request's rules, from a JSON body (``RulesIn``) or from query parameters.

Both forms end as one ``ListRules``; its ``key`` (the text as written) is
what the compiled-plan cache is looked up by, so a repeated request does
not parse or resolve anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from app.core.text import clip
from app.rules.ast import MAX_BOOSTS, MAX_WEIGHT, NUMBER_SYNTAX, AttrName, BoundedRule, Finite
from app.rules.compile import ListRules
from app.rules.errors import RuleError
from app.rules.query import MAX_TEXT, conjunction, parse_boost, parse_cap, parse_filter
from app.schemas_fields import JsonSchemaBounds

#: Most ``filter`` parameters in one query string (they AND together).
MAX_FILTERS = 16
#: Largest per-value cap.
MAX_CAP = 1000
#: Most characters of all the ``filter`` / ``boost`` / ``cap`` parameters of one request
#: together. Why: the parser spends ~10 us of the event loop per token, so 16 filters and
#: 8 boosts of 4,096 one-character values each (every one within its own limit) held
#: every other request up for about a second; this bounds a request's parse to ~100 ms.
MAX_RULES_TEXT = 2 * MAX_TEXT

# A finite number first, then the range: with the bounds and ``allow_inf_nan`` on one
# union, NaN was "should be greater than or equal to -100" and "1" two errors naming
# pydantic's internal members (int, float).
Weight = Annotated[Finite, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT), JsonSchemaBounds()]
Lambda = Annotated[Finite, Field(ge=0, le=1), JsonSchemaBounds()]


def _mmr_text(value: Any) -> Any:
    """The ``mmr`` query parameter is written as the rules write a number (``NUMBER_SYNTAX``):
    pydantic's lax float also reads ``0_1`` (as 1.0: relevance only, answered 200),
    ``nan`` and padding, which no client means to send."""
    if isinstance(value, str) and not NUMBER_SYNTAX.fullmatch(value):
        raise ValueError(
            f"must be a number from 0 to 1 written in digits (e.g. 0.7), got '{clip(value)}'"
        )
    return value


#: The ``mmr`` query parameter (its range is checked by ``rules_from_query``).
QueryLambda = Annotated[float, BeforeValidator(_mmr_text)]

FILTER_DOC = (
    "only items the rule holds for, e.g. genres:Comedy,Drama or year>=1990 (docs/rules.md); "
    f"repeat to AND several (at most {MAX_FILTERS})"
)
BOOST_DOC = (
    "RULE^WEIGHT: add WEIGHT x the spread (std) of this list's scores to the items the rule "
    f"holds for (weight -{MAX_WEIGHT:g}..{MAX_WEIGHT:g}, default 1); at most {MAX_BOOSTS}"
)
CAP_DOC = "ATTRIBUTE:N, at most N items per value of the attribute in the list"
MMR_DOC = "MMR re-rank over the model's item vectors; 1 = relevance only, 0 = diversity only"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoostIn(_Strict):
    rule: BoundedRule
    weight: Weight = Field(1.0, description="in units of the spread (std) of this list's scores")


class CapIn(_Strict):
    attr: AttrName
    max: StrictInt = Field(ge=1, le=MAX_CAP, description="most items per value of attr")


class RulesIn(_Strict):
    """Business rules of one list (docs/rules.md): a filter, boosts, diversity."""

    filter: BoundedRule | None = Field(
        None, description="only items this rule holds for (JSON form of the rule language)"
    )
    boosts: list[BoostIn] = Field(default_factory=list, max_length=MAX_BOOSTS)
    cap: CapIn | None = Field(None, description=CAP_DOC)
    mmr: Lambda | None = Field(None, description=MMR_DOC)

    def to_rules(self) -> ListRules:
        return ListRules(
            filter=self.filter,
            boosts=tuple((b.rule, float(b.weight)) for b in self.boosts),
            cap=(self.cap.attr, self.cap.max) if self.cap else None,
            mmr=float(self.mmr) if self.mmr is not None else None,
            key=("json", self.model_dump_json()),
        )


def rules_from_query(
    filters: Sequence[str] | None,
    boosts: Sequence[str] | None,
    cap: str | None,
    mmr: float | None,
) -> ListRules:
    """The ``filter`` / ``boost`` / ``cap`` / ``mmr`` query parameters; ``RuleError`` if bad."""
    if not (filters or boosts or cap is not None or mmr is not None):
        return _NO_RULES
    return _from_query(tuple(filters or ()), tuple(boosts or ()), cap, mmr)


_NO_RULES = ListRules()

Parsed = TypeVar("Parsed")


def _each(kind: str, texts: Sequence[str], parse: Callable[[str], Parsed]) -> list[Parsed]:
    """``parse`` of each of a repeated parameter; a ``RuleError`` says which one failed.

    Why: the parse of one text (cached per text) cannot know its place, and with
    several ``filter`` parameters "filter is empty" did not say which was; with
    several the message names it, "filter 2 of 3 is empty".
    """
    parsed = []
    for number, text in enumerate(texts, 1):
        try:
            parsed.append(parse(text))
        except RuleError as exc:
            if len(texts) == 1:
                raise
            message, which = str(exc), f"{kind} {number} of {len(texts)}"
            if message.startswith(f"{kind} "):
                raise RuleError(which + message.removeprefix(kind)) from None
            raise RuleError(f"{which}: {message}") from None
    return parsed


@functools.lru_cache(maxsize=1024)
def _from_query(
    filters: tuple[str, ...], boosts: tuple[str, ...], cap: str | None, mmr: float | None
) -> ListRules:
    """``rules_from_query``, once per distinct query (a repeated request parses nothing)."""
    if len(filters) > MAX_FILTERS:
        raise RuleError(f"{len(filters)} filter parameters; at most {MAX_FILTERS}")
    if len(boosts) > MAX_BOOSTS:
        raise RuleError(f"{len(boosts)} boost parameters; at most {MAX_BOOSTS}")
    texts = [*filters, *boosts, *([cap] if cap is not None else [])]
    total = sum(map(len, texts))
    # One parameter past its own limit is named by its parse.
    if total > MAX_RULES_TEXT and all(len(text) <= MAX_TEXT for text in texts):
        raise RuleError(
            f"the filter, boost and cap parameters hold {total} characters together; "
            f"at most {MAX_RULES_TEXT}"
        )
    if mmr is not None and not 0 <= mmr <= 1:
        raise RuleError(f"mmr must be between 0 and 1, got {mmr:g}")
    parsed_cap = parse_cap(cap) if cap is not None else None
    if parsed_cap is not None and parsed_cap[1] > MAX_CAP:
        raise RuleError(f"cap '{clip(cap or '')}': the limit is at most {MAX_CAP}")
    return ListRules(
        filter=conjunction(_each("filter", filters, parse_filter)),
        boosts=tuple(_each("boost", boosts, parse_boost)),
        cap=parsed_cap,
        mmr=mmr,
        key=("query", filters, boosts, cap, mmr),
    )
