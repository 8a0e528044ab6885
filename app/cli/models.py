"""``genrec models ...``: list stored versions, promote, roll back, delete, list trainable
models."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli.common import (
    console,
    fail,
    one_line_on_interrupt,
    out,
    settings,
    store,
    user_errors,
)
from training.run_limits import MAX_IVF_LISTS

if TYPE_CHECKING:
    from app.core.config import Settings
    from models_store import ModelStore

models_app = typer.Typer(
    help="List stored model versions; promote, roll back and delete.", no_args_is_help=True
)


@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Argument(help="only this model")] = None,
) -> None:
    """Stored versions with their aliases and metrics."""
    from models_store.errors import ModelNotFound, StoreError

    with user_errors():
        model_store = store(settings())
        # ``is not None``: an empty name (an unset shell variable) is refused by the store's
        # name check, not read as "no name given", which listed every model.
        names = [model] if model is not None else model_store.list_models()
        table = Table("model", "version", "aliases", "created", "data", "metrics")
        problems: list[str] = []
        # Cells are rich markup; names and data sources are the user's text, shown as typed.
        for name in names:
            # An unreadable alias file is its model's problem, said after the table: it made
            # the whole listing an error, hiding every model from the operator repairing it.
            try:
                aliases = model_store.aliases(name)
            except ModelNotFound:
                raise
            except StoreError as exc:
                aliases = {}
                problems.append(str(exc))
            readable, unreadable = model_store.version_listing(name)
            for manifest in readable:
                tags = ",".join(a for a, v in aliases.items() if v == manifest.version)
                table.add_row(
                    escape(name),
                    escape(manifest.version),
                    escape(tags),
                    manifest.created_at[:19],
                    escape(f"{manifest.data.source} ({manifest.data.n_interactions:,})"),
                    " ".join(f"{k}={v:.3f}" for k, v in list(manifest.metrics.items())[:2]),
                )
            problems += [
                f"{name} version {v} is unreadable: {why}" for v, why in unreadable.items()
            ]
            problems += _dangling_aliases(name, aliases, {m.version for m in readable}, unreadable)
    out.print(table)
    if not names:  # say where: the default ./store is relative to the working directory
        where = Path(model_store.backend.location("")).absolute()
        console.print(f"no stored models in {where} (GENREC_STORE_DIR)", markup=False)
    for problem in problems:  # after the table, not fatal: a listing is where to find them
        out.print(problem, markup=False, style="red")


def _dangling_aliases(
    name: str, aliases: dict[str, str], listed: set[str], unreadable: dict[str, str]
) -> list[str]:
    """A line for each alias whose version is not in the table. Such an alias (its version
    deleted or damaged by hand) showed in no row and the listing said nothing, while
    servers could not load the version it names."""
    return [
        f"{name} alias {alias} points at version {version}, which "
        + ("is unreadable" if version in unreadable else "is not in the store")
        for alias, version in sorted(aliases.items())
        if version not in listed
    ]


@models_app.command("promote")
def models_promote(name: str, version: str) -> None:
    """Point NAME's production alias at VERSION (servers pick it up without restart).

    An alias file that does not parse (a hand edit, a disk fault) is replaced, with no
    rollback history; its bytes are kept beside it (``production.json.unreadable-TIME``).
    """
    with user_errors():
        moved = store(settings()).promote_by_operator(name, version)
    if moved.kept_as is not None:
        out.print(
            f"{name}: alias file {moved.replaced} was unreadable: replaced, with no rollback "
            f"history (the unreadable file is kept beside it as {Path(moved.kept_as).name})",
            markup=False,
        )
    out.print(f"{name}: production -> {version}", markup=False)


@models_app.command("rollback")
def models_rollback(name: str) -> None:
    """Move NAME's production alias back to the version it pointed at before."""
    with user_errors():
        version = store(settings()).rollback(name)
    out.print(f"{name}: production -> {version}", markup=False)


@models_app.command("delete")
def models_delete(name: str, version: str) -> None:
    """Delete VERSION of NAME from the store (refused while an alias points at it, or a
    running experiment's variant pins it, or the experiments at GENREC_DATABASE_URL
    cannot be read).

    It leaves every alias's rollback history, and its number is never given to a
    later version.
    """
    from models_store.manifest import validate_name, validate_version

    with user_errors():
        config = settings()
        model_store = store(config)
        # The names first: a typo is said as such, not as a database problem.
        name, version = validate_name(name, "model name"), validate_version(version)
        pruned = _delete_unless_an_experiment_pins(config, model_store, name, version)
    out.print(f"{name}: deleted version {version}", markup=False)
    for alias in pruned:
        out.print(
            f"{name}: version {version} removed from {alias}'s rollback history", markup=False
        )


def _delete_unless_an_experiment_pins(
    config: Settings, model_store: ModelStore, name: str, version: str
) -> list[str]:
    """Delete the version unless the running experiment's variant pins it (one-line
    refusal): the variant would have nothing to load. The store cannot check it (it
    knows nothing of experiments), so the command does, and an unreadable database is
    a refusal too, since an unchecked delete is the very one that breaks an experiment:
    the operator runs it again once the database answers.

    The check runs inside ``delete_version``, under the model's store lock, which an
    experiment's creation holds while it checks its versions and records itself
    (``ModelStore.holding``): checked before the delete, an experiment created in
    between pinned a version that was then deleted. The database is opened (and
    migrated) before the lock is taken, so the lock is held for one read."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core.db import command_sessions, database_problem
    from app.experiments.definitions import pinning_variant

    url = config.database_url
    try:
        with command_sessions(url, config.auto_migrate) as sessions:

            def refuse_if_pinned() -> None:
                found = pinning_variant(sessions, name, version)
                if found is not None:
                    experiment, variant = found
                    raise fail(
                        f"version {version} of model {name!r} is variant {variant!r} of the "
                        f"running experiment {experiment!r}; stop the experiment first "
                        f"(POST /admin/experiments/{experiment}/stop)"
                    )

            return model_store.delete_version(name, version, check=refuse_if_pinned)
    except SQLAlchemyError as exc:  # opening the database, or the check under the lock
        raise fail(
            f"cannot check whether a running experiment uses version {version} of model "
            f"{name!r} ({database_problem(url, exc)}); nothing was deleted"
        ) from None


#: What an interrupted ``models index`` leaves (``ModelStore.add_retrieval_index``).
_INDEX_INTERRUPTED = (
    "interrupted; if it was writing the index files, the version is refused until this "
    "command runs again, which repairs it (before that, the version is unchanged)"
)


@models_app.command("index")
def models_index(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (a number or an alias)")],
    nlist: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_IVF_LISTS, help="IVF lists (default about 4 sqrt(items))"),
    ] = None,
    nprobe: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_IVF_LISTS,
            help="lists searched per query by default (default: the fewest of max(16, "
            "nlist/128), then doubling, that find 95% of sampled training users' exact top 100)",
        ),
    ] = None,
    similar_nprobe: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_IVF_LISTS,
            help="the similar-items index's default lists per query (default: the fewest "
            "that find 95% of sampled items' exact top 100)",
        ),
    ] = None,
) -> None:
    """Build the approximate-retrieval indexes of a stored version (inner-product models):
    the retrieval index, and the similar-items index when the model has item vectors.

    New versions get them when they are saved; this adds them to older ones, or
    rebuilds them with other settings. Servers pick them up on their next poll.
    If it is interrupted while writing, the version is refused until it runs
    again: running it again repairs the version.
    """
    from training.ann import index_version
    from training.stored_evaluation import split_ref

    # Checked here, not after the version is read and its users' queries computed
    # (minutes for a large model): the count of items is checked by the build.
    for flag, value in (("--nprobe", nprobe), ("--similar-nprobe", similar_nprobe)):
        if value is not None and nlist is not None and value > nlist:
            raise fail(
                f"{flag} {value} is more than --nlist {nlist}: a query searches at most every list"
            )
    with one_line_on_interrupt(line=_INDEX_INTERRUPTED), user_errors():
        name, version = split_ref(ref)
        manifest = index_version(
            store(settings()),
            name,
            version or "production",
            nlist=nlist,
            nprobe=nprobe,
            similar_nprobe=similar_nprobe,
            progress=lambda step: out.print(f"{name}: {step}", markup=False),
        )
    params = manifest.retrieval
    for what, section in (("retrieval", params), ("similar-items", params.get("similar"))):
        if section:
            out.print(
                f"{name} version {manifest.version}: {what} {section['kind']} index over "
                f"{section['n_items']:,} items x {section['dims']} dims (nlist={section['nlist']}, "
                f"nprobe={section['nprobe']}) built in {section['build_seconds']:.1f} s",
                markup=False,
            )
    for what, sampled, section in (
        ("retrieval", "training users", params),
        ("similar-items", "items", params.get("similar") or {}),
    ):
        calibration = section.get("calibration")
        if calibration:
            out.print(
                f"{name} version {manifest.version}: {what} nprobe {section['nprobe']} "
                f"(of {section['nlist']}) finds {calibration['recall']:.1%} of the exact top "
                f"{calibration['k']} of {calibration['queries']} sampled {sampled} (target "
                f"{calibration['target_recall']:.0%}; measured in {calibration['seconds']:.1f} s)",
                markup=False,
            )


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
