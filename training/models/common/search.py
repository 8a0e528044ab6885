"""Search spaces: which settings of a model ``genrec tune`` may change, and over what ranges.

Each model declares its ``SEARCH_SPACE`` in its own file, next to its Config,
so adding a model adds its search space in the same place. A space is plain
data (ranges, log scales, choices, fixed values, conditions); ``sample``
renders it into Optuna's ``trial.suggest_*`` calls, so the search itself is
Optuna's (TPE sampler, pruner) and this module only says *what* to search.

Names are Config field names; the sampled dict is a set of overrides for
``Config().with_overrides``. ``Fixed`` values bound a trial's cost (fewer
maximum epochs, tighter patience) without being searched. A parameter with
``when=("other", (values...))`` is only sampled when ``other`` took one of
those values (e.g. the width of a second layer only with two layers); it is
then left at the Config's default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol


class Suggests(Protocol):
    """The part of ``optuna.trial.Trial`` (or ``FixedTrial``) a space renders into."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Float:
    """A real range [low, high]; ``log`` samples its logarithm uniformly (lr, L2 weights)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Int:
    """An integer range [low, high] (widths, factors); ``log`` for ranges spanning decades."""

    low: int
    high: int
    log: bool = False
    step: int = 1


@dataclass(frozen=True)
class Choice:
    """One of a few values (None, bools, strings, numbers: what Optuna can store)."""

    options: tuple[Any, ...]


@dataclass(frozen=True)
class Fixed:
    """A value every trial uses, not searched (bounds a trial's cost, e.g. max epochs)."""

    value: Any


Distribution = Float | Int | Choice | Fixed


@dataclass(frozen=True)
class Param:
    """A distribution, optionally sampled only when an earlier parameter took given values."""

    dist: Distribution
    when: tuple[str, tuple[Any, ...]] | None = None


def only_if(dist: Distribution, name: str, *values: Any) -> Param:
    """``dist`` sampled only when parameter ``name`` (declared earlier) is one of ``values``."""
    return Param(dist, (name, tuple(values)))


class SearchSpaceError(ValueError):
    """A space that does not fit its Config (unknown field, bad range, bad condition)."""


class SearchSpace:
    """Named parameters in declaration order; conditions refer to earlier ones."""

    def __init__(self, **params: Distribution | Param) -> None:
        self.params: dict[str, Param] = {
            name: p if isinstance(p, Param) else Param(p) for name, p in params.items()
        }
        seen: set[str] = set()
        for name, param in self.params.items():
            _check_distribution(name, param.dist)
            if param.when is not None and param.when[0] not in seen:
                raise SearchSpaceError(
                    f"'{name}' depends on '{param.when[0]}', which is not declared before it"
                )
            seen.add(name)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.params)})"

    @property
    def searched(self) -> list[str]:
        """Names that vary between trials (not ``Fixed``)."""
        return [n for n, p in self.params.items() if not isinstance(p.dist, Fixed)]

    def check_fields(self, config_cls: type) -> None:
        """Every name is a field of ``config_cls`` (the Config this space belongs to)."""
        fields = {f.name for f in dataclasses.fields(config_cls)}
        unknown = sorted(set(self.params) - fields)
        if unknown:
            raise SearchSpaceError(
                f"{config_cls.__qualname__} has no setting(s) {', '.join(unknown)}"
            )

    def defaults(self, config: Any, prefix: str = "") -> dict[str, Any]:
        """The searched parameters at ``config``'s values (Optuna names), for enqueuing a
        model's first trial: its defaults, the paper's settings, are what an expert tries
        first. A value outside its range (or a parameter whose condition does not hold)
        is left out, so the sampler draws it."""
        values = dataclasses.asdict(config)
        chosen: dict[str, Any] = {}
        for name, param in self.params.items():
            if isinstance(param.dist, Fixed):
                continue
            if param.when is not None:
                other, allowed = param.when
                if other not in values or values[other] not in allowed:
                    continue
            value = values.get(name)
            if _contains(param.dist, value):
                chosen[prefix + name] = value
        return chosen

    def sample(self, trial: Suggests, prefix: str = "") -> dict[str, Any]:
        """Overrides for one trial; Optuna parameter names are ``prefix + name``.

        The prefix (``"mult-vae."``) keeps models' parameters apart when one
        study searches several models.
        """
        chosen: dict[str, Any] = {}
        for name, param in self.params.items():
            if param.when is not None:
                other, values = param.when
                if other not in chosen or chosen[other] not in values:
                    continue
            chosen[name] = _suggest(trial, prefix + name, param.dist)
        return chosen


def _suggest(trial: Suggests, name: str, dist: Distribution) -> Any:
    if isinstance(dist, Fixed):
        return dist.value
    if isinstance(dist, Float):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_categorical(name, list(dist.options))


def _contains(dist: Distribution, value: Any) -> bool:
    if isinstance(dist, Choice):
        return value in dist.options
    if isinstance(dist, Int):
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (dist.low <= value <= dist.high and (value - dist.low) % dist.step == 0)
        )
    if isinstance(dist, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not dist.low <= value <= dist.high:
            return False
        return (
            dist.step is None
            or abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-9
        )
    return False


def _check_distribution(name: str, dist: Distribution) -> None:
    if isinstance(dist, Float | Int):
        if not dist.low < dist.high:
            raise SearchSpaceError(f"'{name}': low {dist.low} must be below high {dist.high}")
        if dist.log and dist.low <= 0:
            raise SearchSpaceError(f"'{name}': a log range needs low > 0, got {dist.low}")
        if dist.log and dist.step not in (None, 1):
            raise SearchSpaceError(f"'{name}': a log range cannot have a step")
    elif isinstance(dist, Choice) and not dist.options:
        raise SearchSpaceError(f"'{name}': a choice needs at least one option")
