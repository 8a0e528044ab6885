"""The ``genrec`` console script: train, tune, evaluate, serve, worker, migrate, models, items,
users.

This package is the product's composition root, above both ``app`` (the
service) and ``training`` (the offline package): it reads the service's
``Settings`` and hands plain values down, so ``training`` never imports
``app``. Each command group lives in its own module; heavy imports (torch,
uvicorn, the database) happen inside the commands, so ``genrec --help``
stays quick.
"""

from __future__ import annotations

import typer

from app.cli.evaluate import evaluate
from app.cli.items import items_app
from app.cli.models import models_app
from app.cli.service import migrate, serve, worker
from app.cli.train import train
from app.cli.tune import tune
from app.cli.users import users_app

app = typer.Typer(
    help="genrec: generative collaborative filtering, trained offline and served online.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(train)
app.command()(tune)
app.command()(evaluate)
app.command()(serve)
app.command()(worker)
app.command()(migrate)
app.add_typer(models_app, name="models")
app.add_typer(items_app, name="items")
app.add_typer(users_app, name="users")


def main() -> None:  # pragma: no cover - console entry point
    app()


__all__ = ["app", "main"]
