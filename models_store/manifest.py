"""``manifest.json``: what one stored version is, where its data came from, and its checksums.

A manifest is written once, when a version is published, and never changed.
It is plain JSON so people, ``jq`` and other languages can read it. Readers
tolerate keys they do not know (a newer writer may add fields) but refuse a
``format_version`` they do not support: a layout change bumps that number.

Names used in paths (model, alias, extra files) are validated here too, so
that nothing a caller passes can escape the store root.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from models_store.errors import CorruptVersion, InvalidContents, InvalidName, UnknownFormat

FORMAT_VERSION = 1

_NAME = re.compile(r"[a-z0-9_.-]{1,128}")
#: A version number as text: positive, canonical (no leading zero), below 10**18.
VERSION_PATTERN = r"[1-9][0-9]{0,17}"
_VERSION = re.compile(VERSION_PATTERN)
_SHA256 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------- names


def validate_name(name: object, what: str = "name") -> str:
    """Return ``name`` if it is path-safe: ``[a-z0-9_.-]+``, not starting with a dot.

    The leading-dot rule keeps out ``.``/``..`` and the store's own hidden
    files (``.lock``, ``.tmp-*``).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith("."):
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-128 characters from [a-z0-9_.-], not starting with '.'"
        )
    return name


def validate_version(version: object) -> str:
    """Canonical version string (``3``, not ``03``) from a str or int; else ``InvalidName``."""
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        raise InvalidName(f"invalid version {version!r}: a version is a positive integer")
    return text


def utc_now_iso() -> str:
    """Current time as ISO-8601 UTC with a ``Z`` suffix (millisecond precision)."""
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC text (``...Z``) of an aware datetime; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise InvalidContents(f"datetime {moment!r} has no timezone; pass an aware UTC datetime")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _check_iso_utc(value: object, what: str) -> str:
    """Normalised ISO-8601 UTC text of ``value`` (a str or aware datetime)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if not isinstance(value, str):
        raise InvalidContents(f"{what} must be an ISO-8601 UTC string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidContents(f"{what} {value!r} is not ISO-8601") from exc
    if parsed.tzinfo is None or parsed.utcoffset() != UTC.utcoffset(None):
        raise InvalidContents(f"{what} {value!r} must be in UTC (end with 'Z' or '+00:00')")
    return iso_utc(parsed)


def _check_count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidContents(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _check_json_dict(value: object, what: str) -> dict[str, Any]:
    """A dict with str keys that survives JSON (no NaN, no custom objects)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidContents(f"{what} must be a dict with string keys, got {type(value).__name__}")
    try:
        copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidContents(f"{what} is not JSON-serialisable: {exc}") from exc
    return copied  # a deep copy: later changes to the caller's dict do not leak in


# --------------------------------------------------------------------------- data info


@dataclass(frozen=True)
class DataInfo:
    """The training data a version was fitted on.

    ``cutoff`` is the timestamp of the newest training interaction (ISO-8601
    UTC, or None when the data has no timestamps). Serving folds in only the
    interactions logged after it, so the two never count an event twice.
    """

    fingerprint: str
    cutoff: str | None
    source: str
    n_users: int
    n_items: int
    n_interactions: int

    def __post_init__(self) -> None:
        for name in ("fingerprint", "source"):
            if not isinstance(getattr(self, name), str):
                raise InvalidContents(f"data.{name} must be a string, got {getattr(self, name)!r}")
        if self.cutoff is not None:
            object.__setattr__(self, "cutoff", _check_iso_utc(self.cutoff, "data.cutoff"))
        for name in ("n_users", "n_items", "n_interactions"):
            _check_count(getattr(self, name), f"data.{name}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataInfo:
        """Build from JSON, ignoring unknown keys (forward compatible)."""
        return cls(**{k: data[k] for k in _DATA_KEYS})


_DATA_KEYS = ("fingerprint", "cutoff", "source", "n_users", "n_items", "n_interactions")


class FileEntry(TypedDict):
    """Checksum and size of one file of a version."""

    sha256: str
    bytes: int


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Manifest:
    """Everything about one version except its tensors; ``manifest.json`` on disk.

    Treat the dict fields as read-only: a published version is immutable.
    """

    model: str
    version: str
    created_at: str
    data: DataInfo
    hyper_parameters: dict[str, Any]
    scorer_config: dict[str, Any]
    metrics: dict[str, float]
    training: dict[str, Any]
    files: dict[str, FileEntry]
    format_version: int = field(default=FORMAT_VERSION)
    #: The approximate-retrieval index of the version, if it has one: its parameters,
    #: and ``file``, the version file that holds it (``training.ann``); ``similar``,
    #: the same for the similar-items index, when the model has item vectors. Optional
    #: (older manifests lack it); the store maps those files instead of holding them.
    retrieval: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise UnknownFormat(
                f"format_version {self.format_version!r} is not supported "
                f"(this code reads format_version {FORMAT_VERSION})"
            )
        validate_name(self.model, "model name")
        object.__setattr__(self, "version", validate_version(self.version))
        object.__setattr__(self, "created_at", _check_iso_utc(self.created_at, "created_at"))
        if not isinstance(self.data, DataInfo):
            raise InvalidContents(f"data must be a DataInfo, got {type(self.data).__name__}")
        for name in ("hyper_parameters", "scorer_config", "training", "retrieval"):
            object.__setattr__(self, name, _check_json_dict(getattr(self, name), name))
        object.__setattr__(self, "metrics", _check_metrics(self.metrics))
        object.__setattr__(self, "files", _check_files(self.files))
        for index_file in self._index_file_names():
            if index_file not in self.files:
                raise InvalidContents(
                    f"retrieval names file {index_file!r}, which is not among the version's files"
                )
        _check_retrieval(self.retrieval, "retrieval")
        if isinstance(self.retrieval.get("similar"), dict):
            _check_retrieval(self.retrieval["similar"], "retrieval.similar")

    def mapped_files(self) -> list[str]:
        """The index files ``retrieval`` names (the retrieval index, then the similar-items
        index when there is one): the store verifies them and maps them, never holds them."""
        return [name for name in self._index_file_names() if isinstance(name, str)]

    def _index_file_names(self) -> list[object]:
        """What ``retrieval`` gives as its files' names, checked or not (a malformed
        section names ``None``, which no file is)."""
        if not self.retrieval:
            return []
        names = [self.retrieval.get("file")]
        similar = self.retrieval.get("similar")
        if similar is not None:
            names.append(similar.get("file") if isinstance(similar, dict) else None)
        return names

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": self.model,
            "version": self.version,
            "created_at": self.created_at,
            "data": self.data.to_dict(),
            "hyper_parameters": self.hyper_parameters,
            "scorer_config": self.scorer_config,
            "metrics": self.metrics,
            "training": self.training,
            "files": {name: dict(entry) for name, entry in self.files.items()},
            **({"retrieval": self.retrieval} if self.retrieval else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: object, where: str = "manifest") -> Manifest:
        """Parse a manifest dict; ``UnknownFormat`` or ``CorruptVersion`` naming ``where``."""
        if not isinstance(data, dict):
            raise CorruptVersion(f"{where}: expected a JSON object, got {type(data).__name__}")
        if "format_version" not in data:
            raise CorruptVersion(f"{where}: no 'format_version' field")
        if data["format_version"] != FORMAT_VERSION:
            raise UnknownFormat(
                f"{where}: format_version {data['format_version']!r} is not supported "
                f"(this code reads format_version {FORMAT_VERSION})"
            )
        missing = [k for k in _MANIFEST_KEYS if k not in data]
        if missing:
            raise CorruptVersion(f"{where}: missing field(s) {', '.join(missing)}")
        try:
            if not isinstance(data["data"], dict):
                raise InvalidContents("data must be a JSON object")
            missing_data = [k for k in _DATA_KEYS if k not in data["data"]]
            if missing_data:
                raise InvalidContents(f"data is missing field(s) {', '.join(missing_data)}")
            fields = {k: data[k] for k in _MANIFEST_KEYS}
            fields["data"] = DataInfo.from_dict(data["data"])
            fields["retrieval"] = data.get("retrieval", {})
            return cls(**fields)
        except (InvalidContents, InvalidName) as exc:
            raise CorruptVersion(f"{where}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptVersion(f"{where}: not valid JSON ({exc})") from exc
        return cls.from_dict(data, where)


_MANIFEST_KEYS = (
    "format_version",
    "model",
    "version",
    "created_at",
    "data",
    "hyper_parameters",
    "scorer_config",
    "metrics",
    "training",
    "files",
)


def _check_metrics(metrics: object) -> dict[str, float]:
    """Metric name -> finite float (JSON cannot hold NaN, and a NaN metric gates nothing)."""
    if not isinstance(metrics, dict):
        raise InvalidContents(f"metrics must be a dict, got {type(metrics).__name__}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str):
            raise InvalidContents(f"metric name {name!r} is not a string")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidContents(f"metric {name!r} = {value!r} is not a number") from exc
        if isinstance(value, bool) or not math.isfinite(number):
            raise InvalidContents(f"metric {name!r} = {value!r} is not a finite number")
        out[name] = number
    return out


#: The counts of an index's parameters (``training.ann.IndexParams``).
_RETRIEVAL_COUNTS = ("n_items", "dims", "nlist", "nprobe", "train_rows")


def _check_retrieval(section: dict[str, Any], what: str) -> None:
    """The counts of a retrieval section (``retrieval`` or ``retrieval.similar``) that it
    gives: positive integers, with ``nprobe <= nlist <= n_items`` as every build makes them.

    Why here: the manifest is the one file of a version no checksum covers, and a
    server read these values as they were: ``nlist: -3`` was promoted and served with
    ``GENREC_ANN=on`` without a word, ``nprobe: -3`` raised an ``OverflowError`` out of
    the index loader on every load. A damaged section now makes the manifest
    unreadable, like any other damage (listed as such, refused by promote and by
    servers, which keep what they had). A key it lacks is the index loader's concern
    (the index is not used); whether ``dims`` fits the model's item table only the
    model knows, and the loader checks it against the index file.
    """
    for key in _RETRIEVAL_COUNTS:
        value = section.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidContents(f"{what}.{key} must be a positive integer, got {value!r}")
    n_items, nlist, nprobe = (section.get(key) for key in ("n_items", "nlist", "nprobe"))
    if nlist is not None and n_items is not None and nlist > n_items:
        raise InvalidContents(f"{what}.nlist {nlist} is more than its n_items {n_items}")
    if nprobe is not None and nlist is not None and nprobe > nlist:
        raise InvalidContents(f"{what}.nprobe {nprobe} is more than its nlist {nlist}")


def _check_files(files: object) -> dict[str, FileEntry]:
    if not isinstance(files, dict):
        raise InvalidContents(f"files must be a dict, got {type(files).__name__}")
    out: dict[str, FileEntry] = {}
    for name, entry in files.items():
        validate_name(name, "file name")
        if not isinstance(entry, dict):
            raise InvalidContents(f"files[{name!r}] must be an object with sha256 and bytes")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InvalidContents(f"files[{name!r}].sha256 {sha!r} is not a lowercase hex sha256")
        size = _check_count(entry.get("bytes"), f"files[{name!r}].bytes")
        out[name] = FileEntry(sha256=sha, bytes=size)
    return out


__all__ = [
    "FORMAT_VERSION",
    "DataInfo",
    "FileEntry",
    "Manifest",
    "iso_utc",
    "utc_now_iso",
    "validate_name",
    "validate_version",
]
