"""``genrec train``: fit a model on a data set and write a new version to the store."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import (
    console,
    epoch_printer,
    load_data,
    out,
    parse_sets,
    settings,
    store,
    user_errors,
)


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
    from training.models import model_class
    from training.pipeline import train_and_save

    config = settings()
    with user_errors():
        model_store = store(config)
        if if_missing:
            try:
                version = model_store.resolve(model, "production")
                console.print(f"{model} already has production version {version}; nothing to do")
                return
            except (AliasNotSet, ModelNotFound):
                pass
        # Settings are checked before the (possibly slow) data load, so a typo fails fast.
        overrides = parse_sets(set_)
        model_class(model).Config().with_overrides(overrides)
        interactions = load_data(data, config)
        console.print(f"training [bold]{model}[/] ...")
        manifest = train_and_save(
            model_store,
            model,
            interactions,
            overrides=overrides,
            source=data,
            promote=promote,
            callbacks=[epoch_printer()],
        )
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in manifest.metrics.items())
    out.print(
        f"saved {manifest.model} version {manifest.version}"
        f"{' (production)' if promote else ''}  {metrics}"
    )
