"""``genrec users erase``: erase users (right to erasure), as ``DELETE /v1/users/{id}`` does;
``genrec users prune-erasures``: delete the erasure records no stored version needs."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import fail, out, settings, store, user_errors

#: The largest ``--older-than-days``: a century, which keeps nothing but what is older.
MAX_OLDER_THAN_DAYS = 36_500

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


@users_app.command("prune-erasures")
def users_prune_erasures(
    older_than_days: Annotated[
        int,
        typer.Option(
            min=1,
            # A date that many days back must exist: 10**6 days was an OverflowError's
            # traceback (before year 1), 10**10 one already in timedelta.
            max=MAX_OLDER_THAN_DAYS,
            help="prune only records of erasures older than this many days (longer than "
            "GENREC_CACHE_TTL_S, and than any `genrec train|tune --data db` run outside "
            "the job queue; queued and running jobs are checked)",
        ),
    ] = 30,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be pruned, delete nothing")
    ] = False,
) -> None:
    """Delete the erasure records (erased_users) that no version in the model store needs.

    A record is needed while a stored version (any: aliases, rollback history and
    experiments may load each) holds the user and may hold their erased rows: trained
    before the erasure, from files, or on a log+base job's base data set; and while a
    retrain or tune job still queued or running may have read the log before the
    erasure (its version, once saved, may hold them). Records newer than
    --older-than-days, and those of the newest erasure, are kept. Train no new
    version from a file that still holds a pruned user (docs/deployment.md, "Erasing a
    user").
    """
    from datetime import timedelta

    from app.users import ErasureError
    from app.users.prune import prune_in_database

    config = settings()
    older_than = timedelta(days=older_than_days)
    if older_than.total_seconds() <= config.cache_ttl_s:
        raise fail(
            f"--older-than-days {older_than_days} is within GENREC_CACHE_TTL_S "
            f"({config.cache_ttl_s}s): states cached before such erasures may still be stored"
        )
    with user_errors():
        model_store = store(config)
        try:
            plan, deleted = prune_in_database(
                config.database_url,
                model_store,
                older_than,
                dry_run,
                migrate=config.auto_migrate,
            )
        except ErasureError as exc:
            raise fail(str(exc)) from None
    kept = (
        f"kept {plan.total - len(plan.prunable)}: {plan.needed} needed by a stored version, "
        f"{plan.jobs} by a queued or running job, {plan.recent} newer than "
        f"{older_than_days} day(s), {plan.newest} of the newest erasure"
    )
    if dry_run:
        out.print(
            f"would prune {len(plan.prunable)} of {plan.total} erasure record(s); {kept}",
            markup=False,
        )
    else:
        out.print(f"pruned {deleted} of {plan.total} erasure record(s); {kept}", markup=False)
