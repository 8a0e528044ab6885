"""What every ``genrec`` command shares: the consoles, settings, error lines, data and store.

The CLI is the one place that reads the service's ``Settings``; it hands
``training`` and ``models_store`` plain values (paths, URLs), so the offline
package never needs the web stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from app.core.config import Settings
    from models_store import ModelStore
    from training.data.interactions import Interactions
    from training.models.base import EpochReport

#: Progress and errors (stderr), so stdout carries only results a script may read.
console = Console(stderr=True, soft_wrap=True)
#: Results (stdout).
out = Console(soft_wrap=True)


def settings() -> Settings:
    from app.core.config import get_settings

    return get_settings()


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red error line; the caller raises the returned exit (code 2)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's own errors into one red line and exit code 2, never a traceback."""
    from models_store.errors import StoreError
    from training.data.errors import DataError
    from training.data.splits import SplitError
    from training.evaluate import EvaluationError
    from training.models.base import ModelError
    from training.protocols import ProtocolError
    from training.stored_evaluation import StoredEvaluationError

    try:
        yield
    except (
        StoreError,
        DataError,
        ModelError,
        ProtocolError,
        SplitError,
        EvaluationError,
        StoredEvaluationError,
        FileNotFoundError,
    ) as exc:
        raise fail(str(exc)) from None


def parse_sets(values: list[str] | None, flag: str = "--set") -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} expects key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def epoch_printer(prefix: str = "") -> Callable[[EpochReport], None]:
    def show(report: EpochReport) -> None:
        losses = "  ".join(f"{k}={v:.4f}" for k, v in report.losses.items())
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in report.metrics.items())
        best = " [green]*best[/]" if report.is_best and report.metrics else ""
        console.print(
            f"{prefix}epoch {report.epoch:>3}/{report.epochs}  {losses}  {metrics}{best}"
            f"  [dim]({report.seconds:.2f}s)[/]"
        )

    return show


def data_dir(config: Settings) -> Path | None:
    return Path(config.data_dir) if config.data_dir else None


def load_data(spec: str, config: Settings) -> Interactions:
    from training.data.datasets import load_dataset

    console.print(f"loading data [bold]{spec}[/] ...")
    data = load_dataset(
        spec,
        data_dir=data_dir(config),
        cache_dir=Path(config.cache_dir) if config.cache_dir else None,
        database_url=config.database_url,
    )
    console.print(
        f"  {len(data):,} interactions, {data.n_users:,} users, {data.n_items:,} items"
        f" ({'ratings' if data.explicit else 'implicit'})"
    )
    return data


def store(config: Settings) -> ModelStore:
    from models_store import ModelStore

    return ModelStore(Path(config.store_dir))
