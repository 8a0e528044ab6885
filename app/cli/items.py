"""``genrec items import``: add or update catalog items from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, out, settings, user_errors

items_app = typer.Typer(
    help="The service's item catalog (titles, text, attributes).", no_args_is_help=True
)


@items_app.command("import")
def items_import(
    file: Annotated[
        Path, typer.Argument(help="catalog file: .csv, .jsonl, or ML-100K's u.item (see docs)")
    ],
) -> None:
    """Add or update the items of FILE in the catalog at GENREC_DATABASE_URL.

    CSV: header item_id[,title][,text][,attributes (a JSON object)][,other columns
    become string attributes]. JSONL: {"item_id", "title", "text", "attributes"} per
    line. ML-100K's u.item: titles, genres (a list) and year (a number) as attributes,
    which business rules filter on (docs/rules.md). All or nothing: a bad record, or an
    attribute whose kind differs from the catalog's (a number stays a number), stops
    the import before anything is written.
    Running servers pick the items up at their next reload poll; a text-aware
    production model (convmf) scores new items from their text.
    """
    from app.catalog import CatalogError, import_records
    from training.data.catalog_file import read_catalog_file

    config = settings()
    with user_errors():
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
    out.print(
        f"imported {len(records)} item(s) from {file}: {counts['created']} new, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged",
        markup=False,
    )
