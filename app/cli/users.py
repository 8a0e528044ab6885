"""``genrec users erase``: erase users (right to erasure), as ``DELETE /v1/users/{id}`` does."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, out, settings, user_errors

users_app = typer.Typer(help="The service's users (erasure).", no_args_is_help=True)


@users_app.command("erase")
def users_erase(
    user_ids: Annotated[
        list[str],
        typer.Argument(help="ids of the users to erase", metavar="USER_ID...", show_default=False),
    ],
) -> None:
    """Erase users from the database at GENREC_DATABASE_URL: every row of theirs in the
    interaction log and the impressions is deleted, in one transaction for all of them.

    As DELETE /v1/users/{id}: an id with no rows is erased too (a trained model version
    or a cache may still hold it), and erasing again erases what was logged since.
    Every id is checked before anything is written. Running servers stop serving the
    users' cached state and the training history of versions trained before the erasure
    at their next reload poll; the models' weights keep the users' influence on item
    parameters until the next retrain (docs/deployment.md, "Erasing a user").
    """
    from app.users import ErasureError, erase_from_database

    config = settings()
    with user_errors():
        try:
            erased = erase_from_database(
                config.database_url,
                user_ids,
                max_id_length=config.max_id_length,
                migrate=config.auto_migrate,
            )
        except ErasureError as exc:
            raise fail(str(exc)) from None
    deleted = erased.deleted
    out.print(
        f"erased {len(dict.fromkeys(user_ids))} user(s): deleted {deleted['interactions']} "
        f"interaction(s) and {deleted['impressions']} impression(s)",
        markup=False,
    )
