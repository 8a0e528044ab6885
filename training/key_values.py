"""``KEY=VALUE`` command-line pairs (``--set lr=0.01``), parsed the same way by every script."""

from __future__ import annotations

from collections.abc import Iterable


def parse_pairs(items: Iterable[str], flag: str = "--set") -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}`` (later keys win); a malformed entry is a CLI error."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{flag} expects key=value, got {item!r}")
        out[key] = value
    return out
