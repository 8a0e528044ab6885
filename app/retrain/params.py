"""Retrain ``params`` given as JSON values, checked against the model's config types.

Why: a config parses a *string* (the CLI's ``--set epochs=50`` form) to the
setting's type, but takes any other value as it is, so ``{"epochs": 2.5}`` or
``{"epochs": true}`` used to be queued and fail minutes later in a worker. The
API reads JSON strictly (README, "HTTP API input"): a JSON value must have the
setting's type; an integer is a number, ``true`` is not.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from training.models.base import ModelConfig

#: JSON kinds each setting type accepts, by name for the message.
_KINDS: dict[type, tuple[str, tuple[type, ...]]] = {
    bool: ("true or false", (bool,)),
    int: ("an integer", (int,)),
    float: ("a number", (int, float)),
    str: ("a string", (str,)),
}


def _accepts(hint: Any, value: Any) -> tuple[bool, str]:
    """Whether ``value`` (a non-string JSON scalar or None) fits ``hint``; what it wants."""
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    kind = _KINDS.get(hint)
    if kind is None:  # tuples and other structured settings: only their string form
        return False, 'its string form (e.g. "1,2,3")'
    wanted, types_ok = kind
    if value is None:
        return optional, wanted + (" or null" if optional else "")
    fits = isinstance(value, types_ok) and (hint is bool or not isinstance(value, bool))
    return fits, wanted + (" or null" if optional else "")


def param_type_errors(config: type[ModelConfig], params: Mapping[str, Any]) -> list[str]:
    """One message per JSON value whose type the setting does not take (unknown names
    and strings are left to ``ModelConfig.with_overrides``)."""
    hints = typing.get_type_hints(config)
    errors = []
    for key, value in params.items():
        if isinstance(value, str) or key not in hints:
            continue
        fits, wanted = _accepts(hints[key], value)
        if not fits:
            errors.append(f"setting '{key}' must be {wanted}, got {value!r}")
    return errors
