"""``RuleError``: a rule that cannot be read or does not fit the catalog (a 422 to clients)."""

from __future__ import annotations


class RuleError(ValueError):
    """The message says what is wrong: which parameter, which attribute, which bound."""
