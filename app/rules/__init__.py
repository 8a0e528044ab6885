"""Business rules on every recommendation list: attribute filters, boosts, diversity.

The language (docs/rules.md) is defined once here:

* ``ast`` — the syntax tree; it is also the JSON form of request bodies.
* ``query`` — the query-string form (``?filter=genres:Comedy,Drama``), one lark grammar.
* ``resolve`` — names and value types checked against the catalog; the canonical form.
* ``catalog`` — this process's copy of the catalog's attributes (fed by ``CatalogSync``).
* ``compile`` — rules -> cached item masks and boost offsets over a model's items.
* ``apply`` — the batch step between scoring and top-k (masks, additive boosts).
* ``diversity`` — per-value caps and MMR re-ranking of one list.
* ``request`` — a request's parameters or body -> ``ListRules``.
"""

from app.rules.catalog import AttributeIndex
from app.rules.compile import ListRules, RuleCompiler, RulePlan
from app.rules.errors import RuleError

__all__ = ["AttributeIndex", "ListRules", "RuleCompiler", "RuleError", "RulePlan"]
