"""The ``genrec`` console script: train, evaluate, serve, worker, models.

This module is the composition root. It is the one place in ``training`` that
reaches into ``app`` — lazily, inside the commands that run the service
(serve, worker, migrate) and for the shared ``Settings`` — so importing the
training package never pulls in the web stack.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from app.core.config import Settings
    from training.models.base import EpochReport

app = typer.Typer(
    help="genrec: generative collaborative filtering, trained offline and served online.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(
    help="List stored model versions; promote and roll back.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
items_app = typer.Typer(
    help="The service's item catalog (titles, text, attributes).", no_args_is_help=True
)
app.add_typer(items_app, name="items")

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _settings() -> Settings:
    from app.core.config import get_settings

    return get_settings()


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the project's own errors into one red line and exit code 2, never a traceback."""
    from models_store.errors import StoreError
    from training.data.errors import DataError
    from training.data.splits import SplitError
    from training.evaluate import EvaluationError
    from training.models.base import ModelError
    from training.protocols import ProtocolError

    try:
        yield
    except (
        StoreError,
        DataError,
        ModelError,
        ProtocolError,
        SplitError,
        EvaluationError,
        FileNotFoundError,
    ) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from None


def _parse_sets(values: list[str] | None) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            console.print(f"[bold red]error:[/] --set expects key=value, got {item!r}")
            raise typer.Exit(code=2)
        overrides[key.strip()] = value.strip()
    return overrides


def _epoch_printer(prefix: str = "") -> Callable[[EpochReport], None]:
    def show(report: EpochReport) -> None:
        losses = "  ".join(f"{k}={v:.4f}" for k, v in report.losses.items())
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in report.metrics.items())
        best = " [green]*best[/]" if report.is_best and report.metrics else ""
        console.print(
            f"{prefix}epoch {report.epoch:>3}/{report.epochs}  {losses}  {metrics}{best}"
            f"  [dim]({report.seconds:.2f}s)[/]"
        )

    return show


def _load_data(spec: str, settings: Settings) -> Any:
    from training.data.datasets import load_dataset

    console.print(f"loading data [bold]{spec}[/] ...")
    data = load_dataset(
        spec,
        data_dir=Path(settings.data_dir) if settings.data_dir else None,
        cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
        database_url=settings.database_url,
    )
    console.print(
        f"  {len(data):,} interactions, {data.n_users:,} users, {data.n_items:,} items"
        f" ({'ratings' if data.explicit else 'implicit'})"
    )
    return data


def _store(settings: Settings) -> Any:
    from models_store import ModelStore

    return ModelStore(Path(settings.store_dir))


@app.command()
def train(
    model: Annotated[str, typer.Option(help="model name (see `genrec models available`)")],
    data: Annotated[str, typer.Option(help="ml-100k|ml-1m|...|PATH.csv|PATH.parquet|db")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="hyper-parameter override key=value")
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="point the production alias at the new version")
    ] = False,
    if_missing: Annotated[
        bool, typer.Option(help="do nothing when the model already has a production version")
    ] = False,
) -> None:
    """Train MODEL on DATA and write a new version to the store."""
    from models_store.errors import AliasNotSet, ModelNotFound
    from training.pipeline import train_and_save

    settings = _settings()
    with _user_errors():
        store = _store(settings)
        if if_missing:
            try:
                version = store.resolve(model, "production")
                console.print(f"{model} already has production version {version}; nothing to do")
                return
            except (AliasNotSet, ModelNotFound):
                pass
        from training.models import model_class

        # Settings are checked before the (possibly slow) data load, so a typo fails fast.
        overrides = _parse_sets(set_)
        model_class(model).Config().with_overrides(overrides)
        interactions = _load_data(data, settings)
        console.print(f"training [bold]{model}[/] ...")
        manifest = train_and_save(
            store,
            model,
            interactions,
            overrides=overrides,
            source=data,
            promote=promote,
            callbacks=[_epoch_printer()],
        )
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in manifest.metrics.items())
    out.print(
        f"saved {manifest.model} version {manifest.version}"
        f"{' (production)' if promote else ''}  {metrics}"
    )


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="model name, trained from scratch by the protocol")],
    data: Annotated[str, typer.Option(help="ml-100k|ml-1m|...|PATH.csv|irgan-ml-100k")],
    protocol: Annotated[str, typer.Option(help="evaluation protocol (see docs/protocols.md)")],
    seeds: Annotated[str, typer.Option(help="comma-separated split/training seeds")] = "0",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="hyper-parameter override key=value")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="protocol option key=value")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report as JSON")
    ] = None,
) -> None:
    """Run MODEL through an evaluation PROTOCOL (the papers' protocols) and print the report.

    The model is trained from scratch on each seed's split; docs/protocols.md
    describes every protocol and docs/accuracy.md quotes these reports.
    """
    import torch

    from training.protocols import PROTOCOLS

    if threads:
        torch.set_num_threads(threads)

    settings = _settings()
    with _user_errors():
        if protocol not in PROTOCOLS:
            console.print(
                f"[bold red]error:[/] unknown protocol '{protocol}'; known: {', '.join(sorted(PROTOCOLS))}"
            )
            raise typer.Exit(code=2)
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            console.print(f"[bold red]error:[/] --seeds expects integers like 0,1,2, got {seeds!r}")
            raise typer.Exit(code=2) from None
        report = PROTOCOLS[protocol].run(
            model,
            data,
            seeds=seed_list,
            overrides=_parse_sets(set_),
            data_dir=Path(settings.data_dir) if settings.data_dir else None,
            callbacks=[_epoch_printer("  ")],
            options=_parse_sets(option),
        )
    sys.stdout.write(report.to_markdown())
    if json_out:
        json_out.write_text(report.to_json())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run the HTTP API (settings from GENREC_* environment variables / .env)."""
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=_settings().log_level.lower(),
        timeout_graceful_shutdown=30,
    )


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option(help="run at most one job (if one is claimable), then exit")
    ] = False,
    poll_interval: Annotated[
        float | None,
        typer.Option(help="seconds between looks for a job (default GENREC_JOB_POLL_INTERVAL_S)"),
    ] = None,
) -> None:
    """Run retrain jobs from the database (any number of workers, on any machine)."""
    from app.worker import run_worker

    ran = run_worker(_settings(), once=once, poll_interval=poll_interval)
    console.print(f"worker stopped after {ran} job(s)")


@app.command()
def migrate() -> None:
    """Apply the database migrations (Alembic upgrade head)."""
    from app.core.db import upgrade_database

    url = _settings().database_url
    upgrade_database(url)
    out.print("database is at the latest migration")


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="only this model")] = None,
) -> None:
    """Stored versions with their aliases and metrics."""
    settings = _settings()
    with _user_errors():
        store = _store(settings)
        names = [model] if model else store.list_models()
        table = Table("model", "version", "aliases", "created", "data", "metrics")
        for name in names:
            aliases = store.aliases(name)
            for manifest in store.list_versions(name):
                tags = ",".join(a for a, v in aliases.items() if v == manifest.version)
                table.add_row(
                    name,
                    manifest.version,
                    tags,
                    manifest.created_at[:19],
                    f"{manifest.data.source} ({manifest.data.n_interactions:,})",
                    " ".join(f"{k}={v:.3f}" for k, v in list(manifest.metrics.items())[:2]),
                )
    out.print(table)


@models_app.command("promote")
def models_promote(name: str, version: str) -> None:
    """Point NAME's production alias at VERSION (servers pick it up without restart)."""
    with _user_errors():
        _store(_settings()).promote(name, version)
    out.print(f"{name}: production -> {version}")


@models_app.command("rollback")
def models_rollback(name: str) -> None:
    """Move NAME's production alias back to the version it pointed at before."""
    with _user_errors():
        version = _store(_settings()).rollback(name)
    out.print(f"{name}: production -> {version}")


@models_app.command("available")
def models_available(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show every setting")] = False,
) -> None:
    """Model names that can be trained, with their settings."""
    from training.models import REGISTRY

    for name, cls in sorted(REGISTRY.items()):
        out.print(f"[bold]{name}[/]  ({cls.task})  {(cls.__doc__ or '').strip().splitlines()[0]}")
        if verbose:
            for field, help_text in cls.Config.describe().items():
                out.print(f"    {field}: {help_text}")


@items_app.command("import")
def items_import(
    file: Annotated[Path, typer.Argument(help="catalog file: .csv or .jsonl (see docs)")],
) -> None:
    """Add or update the items of FILE in the catalog at GENREC_DATABASE_URL.

    CSV: header item_id[,title][,text][,attributes (a JSON object)][,other columns
    become string attributes]. JSONL: {"item_id", "title", "text", "attributes"} per
    line. All or nothing: a bad record stops the import before anything is written.
    Running servers pick the items up at their next reload poll; a text-aware
    production model (convmf) scores new items from their text.
    """
    from app.catalog import CatalogError, import_records
    from training.data.catalog_file import read_catalog_file

    settings = _settings()
    with _user_errors():
        records = read_catalog_file(file)
        try:
            counts = import_records(
                settings.database_url,
                records,
                str(file),
                max_id_length=settings.max_id_length,
                migrate=settings.auto_migrate,
            )
        except CatalogError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(code=2) from None
    out.print(
        f"imported {len(records)} item(s) from {file}: {counts['created']} new, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged"
    )


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
