"""Pieces every protocol shares: loading data, building and fitting a model per seed.

A protocol decides *what* is train, validation and test; this module decides
*how* a model is built from the registry and fitted, identically for all of
them, so protocols differ only where their papers do.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback, FitReport, Scorer, Validation
from training.protocols.report import ProtocolReport, SeedRun

DataSpec = str | Interactions


class ProtocolError(ValueError):
    """A protocol cannot run with these settings or this data; the message says why."""


@dataclass(frozen=True)
class Protocol:
    """A named experiment protocol: its paper, its options and its ``run`` function."""

    name: str
    source: str
    summary: str
    run: Callable[..., ProtocolReport]
    options: dict[str, str] = field(default_factory=dict)  # option -> help (with default)


def load(data_spec: DataSpec, data_dir: Path | str | None) -> Interactions:
    """An ``Interactions`` as is, or the data set ``load_dataset`` reads for the spec."""
    if isinstance(data_spec, Interactions):
        return data_spec
    from training.data.datasets import load_dataset

    return load_dataset(data_spec, data_dir=Path(data_dir) if data_dir else None)


def data_root(data_dir: Path | str | None) -> Path:
    """The data directory: the argument, else ``GENREC_DATA_DIR``."""
    root = data_dir or os.environ.get("GENREC_DATA_DIR")
    if not root:
        raise ProtocolError("no data directory: pass data_dir or set GENREC_DATA_DIR")
    return Path(root).expanduser()


def dataset_name(data_spec: DataSpec) -> str:
    return data_spec if isinstance(data_spec, str) else f"<{len(data_spec)} records>"


def sub_seed(seed: int, tag: str) -> int:
    """A second, independent seed derived from ``seed`` (e.g. for the validation carve-out)."""
    return (seed * 1_000_003 + zlib.crc32(tag.encode())) % (2**32)


def check_options(
    protocol: str, given: Mapping[str, str] | None, known: Mapping[str, str]
) -> dict[str, str]:
    """The options as a dict; a ProtocolError naming the known ones for an unknown key."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ProtocolError(
            f"unknown option(s) {unknown} for protocol '{protocol}'; known: {', '.join(sorted(known)) or 'none'}"
        )
    return given


def option_int(options: Mapping[str, str], key: str, default: int) -> int:
    return int(_option(options, key, default, int))


def option_float(options: Mapping[str, str], key: str, default: float) -> float:
    return float(_option(options, key, default, float))


def option_bool(options: Mapping[str, str], key: str, default: bool) -> bool:
    raw = options.get(key)
    if raw is None:
        return default
    if str(raw).lower() in ("1", "true", "yes", "on"):
        return True
    if str(raw).lower() in ("0", "false", "no", "off"):
        return False
    raise ProtocolError(f"option '{key}': cannot read {raw!r} as true/false")


def _option(options: Mapping[str, str], key: str, default: Any, kind: type) -> Any:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ProtocolError(f"option '{key}': cannot read {raw!r} as {kind.__name__}") from None


def require_rating_model(model_name: str, protocol: str) -> None:
    """Rating protocols measure ``predict``; a ranking-only model cannot take them."""
    if not model_class(model_name).scorer_cls.predicts_ratings:
        raise ProtocolError(
            f"protocol '{protocol}' measures rating prediction, but model '{model_name}' "
            "only ranks items; use a top-k protocol"
        )


def fit_seed(
    model_name: str,
    overrides: Mapping[str, str],
    seed: int,
    train: Interactions,
    validation: Validation | None,
    callbacks: list[EpochCallback] | None,
) -> tuple[Scorer, FitReport]:
    """Build the registry model with ``Config().with_overrides(overrides)`` and ``seed``; fit it.

    The scorer returned is the kept (best-validation) epoch's serving form.
    """
    cls = model_class(model_name)
    config = cls.Config().with_overrides(dict(overrides))
    config = dataclasses.replace(config, seed=seed)
    model = cls(config)
    report = model.fit(train, validation, callbacks)
    return model.to_scorer(), report


def seed_run(seed: int, metrics: dict[str, float], report: FitReport) -> SeedRun:
    return SeedRun(
        seed=seed,
        metrics=metrics,
        best_epoch=report.best_epoch,
        epochs_run=report.epochs_run,
        seconds_per_epoch=report.seconds_per_epoch,
        fit_seconds=report.seconds,
    )
