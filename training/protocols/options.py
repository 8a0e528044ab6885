"""Typed protocol options: one frozen dataclass per protocol, each default written once.

The CLI hands a protocol ``--option KEY=VALUE`` pairs as strings; a
protocol reads them as its ``Options`` dataclass, so every option has one
declared type, one default and one help line (which shows that default), and
an unknown key, an unreadable value or an out-of-range value is a
``ProtocolError`` naming the option, before any data is read.

Declare an option with ``option(default, help, check=...)``::

    @dataclass(frozen=True)
    class Options(ProtocolOptions):
        test_fraction: float = option(0.1, "share of ratings held out for test", check=fraction)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self


class ProtocolError(ValueError):
    """A protocol cannot run with these settings or this data; the message says why."""


#: A range check: None when the value is acceptable, else what it should be.
Check = Callable[[Any], str | None]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def option(
    default: Any, help: str, *, check: Check | None = None, default_text: str | None = None
) -> Any:
    """A dataclass field carrying its help line and range check.

    ``default_text`` describes a default that depends on the data (the field's
    default is then ``None``).
    """
    meta = {"help": help, "check": check, "default_text": default_text}
    return dataclasses.field(default=default, metadata=meta)


def fraction(value: float) -> str | None:
    """Strictly between 0 and 1."""
    return None if 0 < value < 1 else "a number between 0 and 1 (exclusive)"


def fraction_or_zero(value: float) -> str | None:
    """0 (off) or strictly between 0 and 1."""
    return None if 0 <= value < 1 else "0 (none) or a number between 0 and 1"


def share(value: float) -> str | None:
    """Above 0, at most 1."""
    return None if 0 < value <= 1 else "a number above 0 and at most 1"


def positive(value: int | None) -> str | None:
    """At least 1 (None: the data-dependent default)."""
    return None if value is None or value >= 1 else "a whole number of at least 1"


@dataclasses.dataclass(frozen=True)
class ProtocolOptions:
    """Base of every protocol's options; subclasses are frozen dataclasses of ``option`` fields."""

    protocol: ClassVar[str] = "?"

    @classmethod
    def parse(cls, given: Mapping[str, Any] | ProtocolOptions | None) -> Self:
        """Read ``KEY=VALUE`` pairs (strings, or values already of the option's type)."""
        if isinstance(given, cls):
            return given
        if isinstance(given, ProtocolOptions):
            raise ProtocolError(
                f"options for protocol '{given.protocol}' given to protocol '{cls.protocol}'"
            )
        given = dict(given or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ProtocolError(
                f"unknown option(s) {unknown} for protocol '{cls.protocol}'; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )
        hints = typing.get_type_hints(cls)
        values = {key: _read(key, raw, hints[key]) for key, raw in given.items()}
        return cls(**values)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            problem = check(value) if check is not None else None
            if problem is not None:
                raise ProtocolError(
                    f"option '{f.name}' of protocol '{self.protocol}': expected {problem}, "
                    f"got {value!r}"
                )

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Option -> help line with its default, for ``--help`` texts and docs."""
        out = {}
        for f in dataclasses.fields(cls):
            default = f.metadata.get("default_text") or _show(f.default)
            out[f.name] = f"{f.metadata['help']} (default {default})"
        return out

    def changed(self) -> dict[str, str]:
        """The options that differ from their defaults, as ``KEY=VALUE`` strings."""
        return {
            f.name: _show(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != f.default
        }


def _read(key: str, raw: Any, kind: Any) -> Any:
    """``raw`` as ``kind`` (float, int, bool, tuple[str, ...], or X | None)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if str(raw).lower() in _TRUE:
            return True
        if str(raw).lower() in _FALSE:
            return False
        raise ProtocolError(f"option '{key}': cannot read {raw!r} as true/false")
    if typing.get_origin(kind) is tuple:
        parts = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(str(p).strip() for p in parts if str(p).strip())
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ProtocolError(f"option '{key}': cannot read {raw!r} as {kind.__name__}") from None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
