"""``genrec tune``: search models and settings on the operator's data, refit and save the winner.

The search is ``training.tuning.run_search`` (Optuna); this command adds what
belongs to the product: the live progress line, a ``dropped MODEL: why`` line
for each model out of the search (one that cannot train on the data: as it
leaves, and again under the leaderboard), the leaderboard (table and JSON), the
plot (with ``--plot``), the refit of the winner on all the data through the same
pipeline as ``genrec train``, the retraining's evaluation gate
(``app.retrain.gate``) and promotion only when ``--promote`` is given *and*
the gate passes. The winner's manifest carries the tuning report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from app.cli.common import (
    console,
    epoch_printer,
    exit_code,
    fail,
    interrupted,
    load_data,
    log_read_time,
    out,
    settings,
    sigterm_as_interrupt,
    store,
    user_errors,
    writable_folder,
)

if TYPE_CHECKING:
    from datetime import datetime

    from models_store import ModelStore
    from training.data.interactions import Interactions
    from training.tuning.confirm import Finalist, Fold
    from training.tuning.report import Entry, TrialRecord


def tune(
    data: Annotated[str, typer.Option(help="ml-100k|ml-1m|...|PATH.csv|PATH.parquet|db")],
    task: Annotated[str, typer.Option(help="topk (rank items) or ratings (predict ratings)")] = (
        "topk"
    ),
    models: Annotated[
        str | None,
        typer.Option(help="comma-separated models to search (default: every model of the task)"),
    ] = None,
    budget_minutes: Annotated[
        float, typer.Option(help="wall-clock budget of the search (the winner's refit comes after)")
    ] = 10.0,
    trials: Annotated[int | None, typer.Option(help="stop after this many trials")] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="validation split: users|time for topk (default users), random for ratings"
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="selection metric: ndcg@K|recall@K (default ndcg@100) or rmse|mae"),
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the split and the sampler")] = 0,
    confirm_folds: Annotated[
        int | None,
        typer.Option(
            help="validation splits each of the 3 finalists is scored on at the end of the "
            "budget, best mean wins (default 3 for budgets of 5 min or more, else 1: off)"
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="write a PNG of the search (best figure over time) to this file"),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="print the tuning report as JSON on stdout")
    ] = False,
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage URL to share the study (default: in memory)")
    ] = None,
    study_name: Annotated[str | None, typer.Option(help="Optuna study name (with --storage)")] = (
        None
    ),
    promote: Annotated[
        bool, typer.Option(help="point production at the winner if it passes the evaluation gate")
    ] = False,
) -> None:
    """Search models and settings on DATA; refit the winner on all of it and save a version."""
    saved: list[str] = []  # the version, once saved
    try:
        with sigterm_as_interrupt():
            _tune(**locals())
    except KeyboardInterrupt as stop:  # typer's own handling exits 130 without a word
        line = _interrupted_line(storage, study_name, saved)
        raise interrupted(code=exit_code(stop), line=line) from None


def _interrupted_line(storage: str | None, study_name: str | None, saved: list[str]) -> str:
    """What Ctrl-C leaves: no version (the winner is saved last, atomically) unless it
    came after the save, and with ``--storage`` the study's finished trials, which a
    rerun of the same study resumes."""
    if saved:
        return f"interrupted; {saved[0]} was saved"
    if storage is None:
        return "interrupted; nothing saved"
    from training.passwords import masked_url

    where = f"in {masked_url(storage)}"
    if study_name is None:
        return (
            f"interrupted; no version saved; the study's finished trials are kept {where} "
            "under a name Optuna chose (give --study-name to resume a study)"
        )
    return (
        f"interrupted; no version saved; the finished trials of study {study_name!r} are "
        f"kept {where}: rerun with the same --storage and --study-name to resume it"
    )


def _tune(
    *,
    data: str,
    task: str,
    models: str | None,
    budget_minutes: float,
    trials: int | None,
    split: str | None,
    metric: str | None,
    seed: int,
    confirm_folds: int | None,
    plot: Path | None,
    json_: bool,
    storage: str | None,
    study_name: str | None,
    promote: bool,
    saved: list[str],
) -> None:
    from training.pipeline import promote_saved
    from training.tuning.search import SearchSettings, check_settings, open_storage, run_search

    names = [n.strip() for n in models.split(",") if n.strip()] if models is not None else None
    if models is not None and not names:
        raise fail("--models is empty; give model names separated by commas")
    config = settings()
    search = SearchSettings(
        task=task,
        models=names,
        budget_seconds=budget_minutes * 60.0,
        max_trials=trials,
        split=split,
        metric=metric,
        seed=seed,
        confirm_folds=confirm_folds,
    )
    with user_errors():
        # Everything that needs no data is checked first, so a typo fails before a slow load.
        check_settings(search)
        model_store = store(config, writable=True)  # the winner is saved after the search
        study_storage = open_storage(storage)  # unreachable or unusable: before the load
        if plot is not None:
            if plot.is_dir():
                raise fail(f"--plot: {plot} is a directory; name the PNG file to write")
            writable_folder(plot.parent, "--plot")
        read_at = log_read_time(data, config)
        interactions = load_data(data, config, until=read_at, ratings_only=task == "ratings")
        console.print(f"tuning for [bold]{budget_minutes:g}[/] min ...")
        result = run_search(
            interactions,
            search,
            storage=study_storage,
            study_name=study_name,
            on_trial=_progress,
            on_fold=_fold_progress,
            on_drop=_dropped,
        )
        report = result.report
        _leaderboard(result.board, report["metric"], to_stderr=json_)
        _best_by_activity(report, to_stderr=json_)
        for model, why in report["dropped"].items():
            _dropped(model, why, to_stderr=json_)
        if plot is not None:  # none by default: no stray file in the working directory
            from training.tuning.plot import plot_search

            plot_search(result.records, report["metric"], report["higher_is_better"], plot)
            console.print(f"plot of the search: {plot}", markup=False)
        winner = result.winner
        assert winner.settings is not None
        from training.device import resolve_device

        device = resolve_device(str(config.device))
        manifest, gate = _refit_and_save(
            model_store, winner, interactions, data, report, device, read_at
        )
        saved.append(f"{manifest.model} version {manifest.version}")
        promoted = promote and bool(gate["promote"])
        if promoted:
            promote_saved(model_store, manifest)
    verdict = "passes" if gate["promote"] else "does not pass"
    console.print(f"gate: {gate['reason']} -> {verdict}")
    if promote and not promoted:
        console.print("[yellow]not promoted: the winner did not pass the gate[/]")
    if json_:
        payload = {
            **report,
            "version": manifest.version,
            "gate": gate,
            "promoted": promoted,
            "plot": None if plot is None else str(plot),
        }
        out.print_json(json.dumps(payload))
    else:
        out.print(
            f"saved {manifest.model} version {manifest.version}"
            f"{' (production)' if promoted else ''}"
        )


def _progress(record: TrialRecord, seconds_left: float) -> None:
    """One line per finished trial: model, settings, figure, pruned or not, time left."""
    value = "-" if record.value is None else f"{record.value:.4f}"
    state = {"complete": "[green]done[/]", "pruned": "[yellow]pruned[/]"}.get(
        record.state, f"[red]{record.state}[/]"
    )
    fit = "" if record.fit_seconds is None else f" fit {record.fit_seconds:.1f}s"
    note = f" ({escape(record.note)})" if record.note else ""  # may quote an error's text
    console.print(
        f"trial {record.number:>3} {record.model:<11} {state:<6} {value}{fit}"
        f"  {_short(record.settings, record.model)}{note}  [dim]{seconds_left:.0f}s left[/]"
    )


def _dropped(model: str, why: str, to_stderr: bool = True) -> None:
    """One line per model out of the search: as it leaves, and again under the board."""
    line = f"[yellow]dropped {model}[/]: {escape(why)}"
    (console if to_stderr else out).print(line)


def _fold_progress(finalist: Finalist, fold: Fold) -> None:
    """One line per confirmation fit: the finalist, the fold's figure, its mean so far."""
    from training.tuning.confirm import fold_line

    console.print(fold_line(finalist, fold), markup=False)


def _short(settings: dict[str, Any], model: str) -> str:
    """The searched settings, 3 significant digits (fixed caps such as epochs are left out)."""
    from training.models import REGISTRY

    cls = REGISTRY.get(model)
    searched = set(cls.search_space.searched) if cls is not None else set(settings)
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in settings.items()
        if k in searched
    )


def _leaderboard(board: list[Entry], metric: str, to_stderr: bool) -> None:
    from rich.table import Table

    table = Table(title=f"leaderboard ({metric}, best trial per model)")
    confirmed = any(e.confirmed is not None for e in board)
    columns = ("model", metric, *(("mean of folds",) if confirmed else ()), "settings", "fit s")
    for column in (*columns, "trials"):
        table.add_column(column)
    for entry in board:
        mean = "-" if entry.confirmed is None else f"{entry.confirmed:.4f}"
        table.add_row(
            entry.model,
            "-" if entry.value is None else f"{entry.value:.4f}",
            *((mean,) if confirmed else ()),
            "-" if entry.settings is None else _short(entry.settings, entry.model),
            "-" if entry.fit_seconds is None else f"{entry.fit_seconds:.1f}",
            " ".join(f"{k} {v}" for k, v in sorted(entry.trials.items())),
        )
    (console if to_stderr else out).print(table)


def _best_by_activity(report: dict[str, Any], to_stderr: bool) -> None:
    """Under the board, which model's best trial served each user-activity segment best
    (``training.tuning.report.best_by_activity``), with the segment's user count."""
    rows = report.get("best_by_activity") or []
    if not rows:
        return
    metric = report["metric"]
    lines = [f"best per user activity ({metric} on the same validation users; few users: noisy):"]
    lines += [
        f"  users with {row['label']} training interactions ({row['users']:,} users): "
        f"{row['model']} {row['value']:.4f}"
        for row in rows
    ]
    for line in lines:
        (console if to_stderr else out).print(line, markup=False)


def _refit_and_save(
    model_store: ModelStore,
    winner: Entry,
    data: Interactions,
    source: str,
    report: dict[str, Any],
    device: Any,
    log_read_at: datetime | None,
) -> tuple[Any, dict[str, Any]]:
    """Refit the winner (``training.tuning.refit``), gate it as retraining does, save it
    (with when it read the log, if it did: ``log_read_time``)."""
    from app.tune.winner import refit_and_gate
    from training.pipeline import save_trained
    from training.tuning.candidates import winner_data
    from training.tuning.refit import describe_lengths

    model = winner.model
    data = winner_data(model, data)  # a rating model: a mixed log's ratings alone
    lengths = describe_lengths(winner.lengths)
    epochs = f" for {lengths} (validation's choice)" if lengths else ""
    console.print(
        f"refitting the winner [bold]{model}[/]: with the 10% slice held out for the gate, "
        f"then on all the data{epochs} ..."
    )
    refit, gate = refit_and_gate(
        model_store,
        model,
        dict(winner.settings or {}),
        data,
        device,
        lengths=winner.lengths,
        callbacks=[epoch_printer("  ")],
    )
    manifest = save_trained(
        model_store,
        model,
        refit.to_save(),
        data,
        source,
        log_read_at=log_read_at,
        training={"tuning": report, "gate": gate, "refit": refit.record},
    )
    return manifest, gate
