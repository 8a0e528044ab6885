"""``genrec items import`` / ``remove``: add or update catalog items from a file, or
remove items from the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import data_dir, fail, one_line_on_interrupt, out, settings, user_errors

if TYPE_CHECKING:
    from app.core.config import Settings

items_app = typer.Typer(
    help="The service's item catalog (titles, text, attributes).", no_args_is_help=True
)


#: Named data sets whose item file the catalog reader knows, and that file.
NAMED_CATALOGS = {"ml-100k": "u.item"}


@items_app.command("import")
def items_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="catalog file: .csv, .jsonl, or ML-100K's u.item (see docs); or ml-100k: "
            "its u.item, found as --data ml-100k finds the set"
        ),
    ],
) -> None:
    """Add or update the items of FILE in the catalog at GENREC_DATABASE_URL.

    CSV: header item_id[,title][,text][,attributes (a JSON object)][,other columns
    become string attributes]. JSONL: {"item_id", "title", "text", "attributes"} per
    line. ML-100K's u.item: titles, genres (a list) and year (a number) as attributes,
    which business rules filter on (docs/rules.md); `ml-100k` names it wherever the
    set is (GENREC_DATA_DIR, else the download cache, else downloaded, as for
    `genrec train --data ml-100k`). All or nothing: a bad record, or an
    attribute whose kind differs from the catalog's (a number stays a number), stops
    the import before anything is written. A file without items (empty, blank
    lines only, a CSV header alone) is refused: an export that wrote nothing failed.
    Running servers pick the items up at their next reload poll; a text-aware
    production model (convmf) scores new items from their text.
    """
    from app.catalog import CatalogError, import_records
    from training.data.catalog_file import read_catalog_file

    config = settings()
    # The import is one transaction: stopped before its commit, nothing was written.
    with (
        one_line_on_interrupt(line="interrupted; the import is all or nothing: run it again"),
        user_errors(),
    ):
        if str(file) in NAMED_CATALOGS and not file.exists():
            file = _named_catalog_file(str(file), config)
        records = read_catalog_file(file)
        try:
            counts = import_records(
                config.database_url,
                records,
                str(file),
                max_id_length=config.max_id_length,
                migrate=config.auto_migrate,
            )
        except CatalogError as exc:
            raise fail(str(exc)) from None
    restored = f", {counts['restored']} restored" if counts["restored"] else ""
    out.print(
        f"imported {len(records)} item(s) from {file}: {counts['created']} new, "
        f"{counts['updated']} updated{restored}, {counts['unchanged']} unchanged",
        markup=False,
    )


@items_app.command("remove")
def items_remove(
    item_ids: Annotated[
        list[str],
        typer.Argument(help="ids of the items to remove", metavar="ITEM_ID...", show_default=False),
    ],
) -> None:
    """Remove items from the catalog at GENREC_DATABASE_URL: they leave every list.

    As DELETE /v1/items/{id}: a soft removal (the item keeps its row and its
    interactions; PUT /v1/items/{id} or an import restores it). All or nothing:
    an id that is not in the catalog stops the command before anything is
    removed. Removing a removed item again is not an error. Running servers drop
    the items from their lists at their next reload poll.
    """
    from app.catalog import CatalogError, remove_from_database

    config = settings()
    with user_errors():
        try:
            counts = remove_from_database(
                config.database_url,
                item_ids,
                max_id_length=config.max_id_length,
                migrate=config.auto_migrate,
            )
        except CatalogError as exc:
            raise fail(str(exc)) from None
    already = counts["already_removed"]
    out.print(
        f"removed {counts['removed']} item(s)"
        + (f"; {already} already removed" if already else ""),
        markup=False,
    )


def _named_catalog_file(name: str, config: Settings) -> Path:
    """The item file of the named set, located (or fetched) as ``--data NAME`` is."""
    from training.data.datasets import locate_named

    folder = locate_named(
        name,
        data_dir=data_dir(config),
        cache_dir=Path(config.cache_dir) if config.cache_dir else None,
        base_url=config.dataset_base_url,
    )
    return folder / NAMED_CATALOGS[name]
