"""``genrec train``: fit a model on a data set and write a new version to the store.

``--nproc N`` trains on N local processes with torchrun and
DistributedDataParallel (``training.distributed``); the same command under
``torchrun`` (several machines) joins torchrun's process group instead.
Either way rank 0 alone prints progress and writes the version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from app.cli.common import (
    check_data,
    console,
    epoch_printer,
    fail,
    interrupted,
    load_data,
    log_read_time,
    one_line_on_interrupt,
    out,
    parse_sets,
    settings,
    store,
    user_errors,
)
from training.run_limits import MAX_PROCESSES

if TYPE_CHECKING:
    from models_store import ModelStore


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
        bool,
        typer.Option(
            help="do nothing when the model already has a production version that loads "
            "(one deleted or damaged is trained over)"
        ),
    ] = False,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_PROCESSES,
            help="train on N local processes (torchrun + DistributedDataParallel: Gloo on CPU, "
            "NCCL on GPUs); batch_size stays the global batch (docs/training.md)",
        ),
    ] = 1,
) -> None:
    """Train MODEL on DATA and write a new version to the store."""
    from training import distributed

    # A rank of --nproc stays quiet: the launcher (this command's parent) says it once.
    with one_line_on_interrupt(quiet=distributed.launched()):
        _train(model, data, set_, promote, if_missing, nproc)


def _train(
    model: str,
    data: str,
    set_: list[str] | None,
    promote: bool,
    if_missing: bool,
    nproc: int,
) -> None:
    from training import distributed
    from training.device import resolve_device
    from training.models import REGISTRY, model_class, trains_on_ratings
    from training.pipeline import train_and_save

    config = settings()
    worker = distributed.launched()  # one of several processes torchrun started
    with user_errors():
        model_store = store(config)
        if if_missing and not worker and _has_loadable_production(model_store, model):
            return
        # Settings are checked before the (possibly slow) data load, so a typo fails fast.
        overrides = parse_sets(set_)
        cls = model_class(model)
        # Where the model trains picks the backend: NCCL for GPUs, Gloo on the CPU.
        device_setting = getattr(cls.Config().with_overrides(overrides), "device", "cpu")
        device_type = resolve_device(str(device_setting)).type
        if distributed.launched_rank() == 0:  # the one that saves; other ranks never write
            store(config, writable=True)  # before training, not at the save after it
    if (nproc > 1 or worker) and not cls.trains_distributed:
        supported = ", ".join(sorted(n for n, c in REGISTRY.items() if c.trains_distributed))
        raise fail(
            f"model '{model}' does not train on several processes (it is not trained by "
            f"gradient steps on shards of its data); models that do: {supported}"
        )
    if nproc > 1 and not worker:
        with user_errors():
            check_data(data, config)
        args = ["train", "--model", model, "--data", data]
        args += [f"--set={item}" for item in set_ or []]
        args += ["--promote"] if promote else []
        console.print(f"training [bold]{escape(model)}[/] on {nproc} processes (torchrun) ...")
        code = distributed.launch(nproc, "app.cli", args)
        if code in distributed.INTERRUPTED_CODES:  # torchrun stopped the ranks first
            raise interrupted(code=code)
        if code:  # the failing rank printed its error; torchrun stopped the others
            raise typer.Exit(code=code)
        return
    with user_errors(), distributed.session(device_type):  # left even when training fails
        main = distributed.is_main()
        console.quiet = not main  # progress once, from rank 0; any rank's error below
        try:
            # Every rank reads the log up to the same instant, which rank 0 alone asks for.
            read_at = distributed.from_main(lambda: log_read_time(data, config))
            with distributed.main_first():  # rank 0 downloads / fills caches first
                interactions = load_data(
                    data, config, until=read_at, ratings_only=trains_on_ratings(model)
                )
            console.print(f"training [bold]{escape(model)}[/] ...")
            manifest = train_and_save(
                model_store,
                model,
                interactions,
                overrides=overrides,
                source=data,
                promote=promote,
                callbacks=[epoch_printer()] if main else [],
                log_read_at=read_at,
            )
        finally:
            console.quiet = False
    if not main:
        return
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in manifest.metrics.items())
    out.print(
        f"saved {manifest.model} version {manifest.version}"
        f"{' (production)' if promote else ''}  {metrics}",
        markup=False,
    )


def _has_loadable_production(model_store: ModelStore, model: str) -> bool:
    """Whether ``model``'s production version loads, as a server would load it (said when it
    does); ``--if-missing`` trains when it does not.

    An alias left pointing at a deleted version, or at one present but damaged (a corrupt
    manifest, a file that no longer matches its checksum), is no production version: the
    deployment's init-model step called it one and the servers had nothing to load. The
    version is read and verified whole, once, as every server does at its start. An
    unreadable alias file is not "missing": it is an error (``user_errors``), since the
    promotion after the training would fail on it.
    """
    from models_store.errors import AliasNotSet, ModelNotFound, StoreError, VersionNotFound

    try:
        version = model_store.resolve(model, "production")
    except (AliasNotSet, ModelNotFound):
        return False
    try:
        model_store.load(model, version)
    except VersionNotFound as exc:
        console.print(f"production is not in the store ({exc}); training", markup=False)
        return False
    except StoreError as exc:
        console.print(
            f"production version {version} of {model} does not load ({exc}); training",
            markup=False,
        )
        return False
    console.print(f"{model} already has production version {version}; nothing to do")
    return True
