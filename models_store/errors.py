"""Errors of the model store: one base class, one subclass per thing that can go wrong.

Callers (the server's model holder, the CLI, the retrain worker) branch on the
class, never on the message; the message is for people and names the model,
version and file involved, so a refused artifact can be found and fixed.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises; the message says what and where."""


class InvalidName(StoreError, ValueError):
    """A model, alias, version or extra-file name is not allowed (path-safe names only)."""


class InvalidContents(StoreError, ValueError):
    """What a caller asked to save cannot be stored (wrong types, inconsistent shapes)."""


class ModelNotFound(StoreError, LookupError):
    """The store holds no version of this model."""


class VersionNotFound(StoreError, LookupError):
    """The model exists but this version does not."""


class AliasNotSet(StoreError, LookupError):
    """The alias (e.g. ``production``) has never been set for this model."""


class CorruptVersion(StoreError):
    """A version on disk fails verification: missing/extra file, checksum, or bad content."""


class UnknownFormat(StoreError):
    """A manifest's ``format_version`` is not one this code can read."""


class NothingToRollBack(StoreError):
    """The alias has no previous version to go back to."""


class VersionInUse(StoreError):
    """The version cannot be deleted: an alias (e.g. ``production``) points at it."""


class UnreadableAlias(StoreError):
    """An alias file exists but cannot be read (``raw`` is None: no permission, a folder in
    its place) or does not parse (``raw``: its bytes, kept when ``promote`` replaces it)."""

    def __init__(self, message: str, where: str = "", raw: bytes | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.raw = raw


class AliasChanged(StoreError):
    """The alias no longer points at the version the caller expected (it moved meanwhile)."""


__all__ = [
    "AliasChanged",
    "AliasNotSet",
    "CorruptVersion",
    "InvalidContents",
    "InvalidName",
    "ModelNotFound",
    "NothingToRollBack",
    "StoreError",
    "UnknownFormat",
    "UnreadableAlias",
    "VersionInUse",
    "VersionNotFound",
]
