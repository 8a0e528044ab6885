"""genrec's model store: versioned, checksummed, immutable artifacts with movable aliases.

Training writes versions here and the server reads them; this package is the
only thing the two share, and it imports nothing else of ours (numpy,
safetensors and the standard library only — no torch).
"""

from models_store.backend import Backend, LocalDirectoryBackend
from models_store.contents import VersionContents, history_matrix, non_finite
from models_store.errors import (
    AliasChanged,
    AliasNotSet,
    CorruptVersion,
    InvalidContents,
    InvalidName,
    ModelNotFound,
    NothingToRollBack,
    StoreError,
    UnknownFormat,
    UnreadableAlias,
    VersionInUse,
    VersionNotFound,
)
from models_store.manifest import FORMAT_VERSION, DataInfo, FileEntry, Manifest, iso_utc
from models_store.store import LoadedVersion, ModelStore, Promotion

__all__ = [
    "FORMAT_VERSION",
    "AliasChanged",
    "AliasNotSet",
    "Backend",
    "CorruptVersion",
    "DataInfo",
    "FileEntry",
    "InvalidContents",
    "InvalidName",
    "LoadedVersion",
    "LocalDirectoryBackend",
    "Manifest",
    "ModelNotFound",
    "ModelStore",
    "NothingToRollBack",
    "Promotion",
    "StoreError",
    "UnknownFormat",
    "UnreadableAlias",
    "VersionContents",
    "VersionInUse",
    "VersionNotFound",
    "history_matrix",
    "iso_utc",
    "non_finite",
]
