"""Pieces every protocol shares: loading data, building and fitting a model per seed.

A protocol decides *what* is train, validation and test; this module decides
*how* a model is built from the registry and fitted, identically for all of
them, so protocols differ only where their papers do.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.interactions import Interactions
from training.models import model_class, trains_on_ratings
from training.models.base import EpochCallback, FitReport, Scorer, Validation
from training.protocols.options import ProtocolError as ProtocolError
from training.protocols.options import ProtocolOptions
from training.protocols.report import ProtocolReport, SeedRun


@dataclass(frozen=True)
class LogSpec:
    """The service's interaction log (data spec ``db``), read for the model being measured.

    A rating model (``training.models.trains_on_ratings``) reads the log as ``genrec
    train`` reads it for that model: ``ratings_only``, so a mixed log's clicks are not
    trained and tested on as ratings of 1.0, the bottom of the scale.
    """

    ratings_only: bool
    database_url: str | None = None  # None: GENREC_DATABASE_URL

    def __repr__(self) -> str:
        return "'db'"  # what the operator gave, in a protocol's refusal


DataSpec = str | Interactions | LogSpec


@dataclass(frozen=True)
class Trial:
    """One run's split, as the protocol's paper makes it for one seed (or fold).

    ``measure`` turns the kept epoch's scorer into the run's metrics on the
    test part.
    """

    train: Interactions
    validation: Validation | None
    measure: Callable[[Scorer], dict[str, float]]


@dataclass(frozen=True)
class Plan:
    """What a protocol runs: the data set's name and one ``Trial`` per seed (or fold).

    ``labels`` are the seeds (or fold numbers) in order; ``trial(label)``
    builds that run's split when its turn comes, so one split is in memory at
    a time.
    """

    dataset: str
    labels: list[int]
    trial: Callable[[int], Trial]
    seed_label: str = "seed"


#: ``plan(data_spec, data_dir, options, seeds) -> Plan``: a protocol's own part.
Planner = Callable[[DataSpec, Path | str | None, Any, list[int]], Plan]


@dataclass(frozen=True)
class Protocol:
    """A named experiment protocol: its paper, its typed options and its split per seed.

    ``run`` is the same for every protocol (``run_plan``): read the options,
    refuse a model the protocol cannot measure, then fit and measure one
    model per seed.
    """

    name: str
    source: str
    summary: str
    headline: list[str]
    options: type[ProtocolOptions]
    plan: Planner
    measures_ratings: bool = False

    def run(
        self,
        model_name: str,
        data_spec: DataSpec,
        *,
        seeds: Sequence[int] = (0,),
        overrides: Mapping[str, str] | None = None,
        data_dir: Path | str | None = None,
        callbacks: list[EpochCallback] | None = None,
        options: Mapping[str, Any] | ProtocolOptions | None = None,
        database_url: str | None = None,
    ) -> ProtocolReport:
        """Fit ``model_name`` once per seed on this protocol's split; the report of all runs.

        ``database_url``: the log that the spec ``db`` names (None: ``GENREC_DATABASE_URL``);
        the CLI passes its configured one, as ``genrec train --data db`` reads it."""
        check_seeds(seeds)
        opts = self.options.parse(options)
        if self.measures_ratings:
            require_rating_model(model_name, self.name)
        spec = for_model(data_spec, model_name, database_url)
        plan = self.plan(spec, data_dir, opts, list(seeds))
        given = opts.changed() if isinstance(options, ProtocolOptions) else dict(options or {})
        return run_plan(
            self.name, self.headline, model_name, plan, dict(overrides or {}), given, callbacks
        )


def check_seeds(seeds: Sequence[int]) -> None:
    """Refuse what no run can use before the data is read: no seed at all (an empty report),
    one numpy's generators refuse (a negative seed was a traceback from the split), or a
    seed given twice (the same run again, which shrinks the report's standard deviation)."""
    if not seeds:
        raise ProtocolError("no seeds given; give at least one, e.g. 0")
    for seed in seeds:
        if not 0 <= seed < 2**32:
            raise ProtocolError(f"seed {seed} is out of range; seeds must be in [0, 2^32)")
    repeated = sorted(seed for seed, times in Counter(seeds).items() if times > 1)
    if repeated:
        raise ProtocolError(
            f"seed(s) {', '.join(map(str, repeated))} given more than once; each seed is one run"
        )


def run_plan(
    protocol: str,
    headline: list[str],
    model_name: str,
    plan: Plan,
    overrides: dict[str, str],
    options: dict[str, str],
    callbacks: list[EpochCallback] | None,
) -> ProtocolReport:
    """The seed loop every protocol shares: split, fit (seeded), measure, per label."""
    runs = []
    for label in plan.labels:
        trial = plan.trial(label)
        scorer, report = fit_seed(
            model_name, overrides, label, trial.train, trial.validation, callbacks
        )
        runs.append(seed_run(label, trial.measure(scorer), report))
    return ProtocolReport(
        protocol,
        model_name,
        plan.dataset,
        runs,
        headline,
        overrides,
        options,
        seed_label=plan.seed_label,
    )


def for_model(data_spec: DataSpec, model_name: str, database_url: str | None) -> DataSpec:
    """``data_spec``, the log (``db``, at ``database_url``) as a ``LogSpec`` read for
    ``model_name``."""
    from training.data.datasets import names_log

    if isinstance(data_spec, str) and names_log(data_spec):
        return LogSpec(trains_on_ratings(model_name), database_url)
    return data_spec


def load(data_spec: DataSpec, data_dir: Path | str | None) -> Interactions:
    """An ``Interactions`` as is, or the data set ``load_dataset`` reads for the spec."""
    if isinstance(data_spec, Interactions):
        return data_spec
    from training.data.datasets import load_dataset

    folder = Path(data_dir) if data_dir else None
    if isinstance(data_spec, LogSpec):
        return load_dataset(
            "db",
            data_dir=folder,
            database_url=data_spec.database_url,
            ratings_only=data_spec.ratings_only,
        )
    return load_dataset(data_spec, data_dir=folder)


def data_root(data_dir: Path | str | None) -> Path:
    """The data directory: the argument, else ``GENREC_DATA_DIR``."""
    root = data_dir or os.environ.get("GENREC_DATA_DIR")
    if not root:
        raise ProtocolError("no data directory: pass data_dir or set GENREC_DATA_DIR")
    return Path(root).expanduser()


def dataset_name(data_spec: DataSpec) -> str:
    if isinstance(data_spec, LogSpec):
        return "db"
    return data_spec if isinstance(data_spec, str) else f"<{len(data_spec)} records>"


def sub_seed(seed: int, tag: str) -> int:
    """A second, independent seed derived from ``seed`` (e.g. for the validation carve-out)."""
    return (seed * 1_000_003 + zlib.crc32(tag.encode())) % (2**32)


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
