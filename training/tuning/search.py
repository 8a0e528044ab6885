"""The search: one Optuna study over every candidate model, within a wall-clock budget.

``run_search`` is the one entry point, for the CLI now and for a worker job
later: it takes an Optuna storage URL (None: in memory) and a study name, so
several workers can share one study in a database, and it reports every
finished trial through ``on_trial``. The model is the study's first
(categorical) parameter and each model's settings are conditional on it
(``<model>.<setting>``), so TPE learns both which model and which settings.
Each candidate gets one trial first (enqueued) so none is starved, at its
default settings (the paper's, where they lie in the search space): the
search then starts from what an expert would try first.

Several processes can share one study (a worker fleet, ``app/tune``): one
*lead* opens it and enqueues the first trials (``open_search(...,
enqueue_first=True)``), the others open the same study without enqueuing and
run ``search_trials`` with what is left of the budget; the lead alone
summarises (``summarise``). ``run_search`` is the three in one process.

With a budget of five minutes or more the last fifth of it re-validates the
finalists (``confirm``): the best trial of each of the three best models (or
the top trials of fewer models) is refitted on more validation splits and
the best mean wins, so a noisy split
does not pick the winner alone. The search proper gets the rest
(``SearchSettings.search_seconds``).

A model that cannot train on the data whatever its settings never enters the
study: ``candidates.screen`` runs each candidate's ``Model.check_data`` on the
tuning split before the study is created, so the model's categorical holds
only the others, and the report's ``dropped`` says why each was left out. A
model can still leave while the trials run (``dropping``: a fit that finds the
data unsuitable, or ``FAILURES_TO_DROP`` failures with no trial trained); the
sampler then draws among the rest, and the search ends when none is left.

The budget is honoured on an injected clock: after each trial the study
stops once the deadline has passed, and a fit still running at the deadline
is stopped at its next epoch (``pruning.EpochPruning``). No one fit may take
more than the budget divided by the number of candidates, so a slow model
cannot starve the others; a fit stopped for time counts with the best epoch
it reached. Only the winner's final refit (the CLI's) runs after the budget.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from training.data.interactions import Interactions
from training.models import model_class
from training.models.base import EpochCallback, ModelError
from training.passwords import masked_url, without_password
from training.tuning.candidates import check_names, choose_models, out_line, screen
from training.tuning.confirm import (
    CONFIRM_SHARE,
    MAX_FOLDS,
    Finalist,
    Fold,
    choose_finalists,
    confirm_finalists,
    confirmation_record,
    folds_for,
    rerank,
)
from training.tuning.dropping import MODEL, DroppingSampler, announce, dropped_models
from training.tuning.errors import TuningError
from training.tuning.objective import Objective
from training.tuning.pruning import PerModelPruner
from training.tuning.report import Entry, TrialRecord, leaderboard, tuning_report
from training.tuning.split import TuningSplit, check_split, tuning_split

#: A budget under this cannot fit even one trial of the fastest model plus its validation.
MIN_BUDGET_SECONDS = 30.0
#: A week: a longer search belongs in several jobs (each resumes nothing of the last, but
#: a week of trials has long since settled); a budget of 1e300 minutes overflowed the
#: deadline's datetime in the worker, after the job had been accepted.
MAX_BUDGET_SECONDS = 7 * 24 * 3600.0
#: The largest seed (the split's and the sampler's: NumPy seeds are 32-bit).
MAX_SEED = 2**32 - 1
#: The most trials one search may ask for: its budget (at most a week) ends it sooner in
#: practice (a trial a second for a week is 604,800); the bound keeps an absurd count
#: (``2**62`` through ``POST /admin/tune``) out of the job record.
MAX_TRIALS = 1_000_000
#: Random trials before TPE models the space (per study, across models).
TPE_STARTUP_TRIALS = 5


@dataclass(frozen=True)
class SearchSettings:
    """What to search and for how long (all of it lands in the report)."""

    task: str
    models: Sequence[str] | None = None  # None: every model of the task (``candidates``)
    budget_seconds: float = 600.0
    max_trials: int | None = None
    split: str | None = None  # None: the task's default (``split.DEFAULT_SPLIT``)
    metric: str | None = None  # None: ndcg@100 / rmse
    seed: int = 0
    #: Validation folds per finalist (``confirm``); None: 3 for budgets of 5 min or more,
    #: else 1 (no confirmation).
    confirm_folds: int | None = None

    @property
    def folds(self) -> int:
        return folds_for(self.budget_seconds, self.confirm_folds)

    @property
    def search_seconds(self) -> float:
        """The part of the budget the trials get (the rest re-validates the finalists)."""
        if self.folds < 2:
            return self.budget_seconds
        return self.budget_seconds * (1.0 - CONFIRM_SHARE)


@dataclass
class SearchResult:
    """The study, the per-trial records, the leaderboard and the report."""

    study: optuna.Study
    models: list[str]
    records: list[TrialRecord]
    board: list[Entry]
    report: dict[str, Any]

    @property
    def winner(self) -> Entry:
        return self.board[0]


@dataclass
class Search:
    """An opened search: the candidates, the validation split and the Optuna study."""

    settings: SearchSettings
    models: list[str]  # the candidates that can train on the split (``candidates.screen``)
    split: TuningSplit
    study: optuna.Study
    data: Interactions  # what the split was drawn from (confirmation draws more splits)
    #: Candidates left out before the search, and why (their ``check_data``'s message).
    left_out: dict[str, str] = field(default_factory=dict)
    #: The study's choices of model: ``models``, or what a study opened again was
    #: created with (its categorical cannot change; the sampler avoids those left out).
    choices: list[str] = field(default_factory=list)

    def dropped(self) -> dict[str, str]:
        """Every candidate out of the search and why: left out before it, or dropped by
        its trials (``dropping.dropped_models``, whoever ran them)."""
        during = dropped_models(self.study.get_trials(deepcopy=False))
        return {**self.left_out, **{m: why for m, why in during.items() if m in self.models}}


def check_settings(settings: SearchSettings) -> None:
    """Everything about a request that needs no data: budget and trial count, task,
    model names, split, metric, seed and confirmation folds. The CLI and ``POST /admin/tune`` both call it, so a
    typo fails before any data is read (and a service request with a 422)."""
    check_budget(settings.budget_seconds, settings.max_trials)
    check_names(settings.task, settings.models)
    check_split(settings.task, settings.split, settings.metric)
    if not 0 <= settings.seed <= MAX_SEED:
        raise TuningError(f"--seed must be between 0 and {MAX_SEED}, got {settings.seed}")
    folds = settings.confirm_folds
    if folds is not None and not 1 <= folds <= MAX_FOLDS:
        raise TuningError(f"--confirm-folds must be between 1 and {MAX_FOLDS}, got {folds}")


def check_budget(budget_seconds: float, max_trials: int | None) -> None:
    """Refuse a budget or trial count that cannot run one trial (before any data is read)."""
    if math.isnan(budget_seconds):  # every comparison is false: it read as over a week
        raise TuningError("--budget-minutes is not a number (nan); give minutes, e.g. 10")
    if budget_seconds < MIN_BUDGET_SECONDS:
        raise TuningError(
            f"a budget of {budget_seconds:.0f} s is too small for one trial; "
            f"give at least {MIN_BUDGET_SECONDS:.0f} s (--budget-minutes 0.5)"
        )
    if not budget_seconds <= MAX_BUDGET_SECONDS:
        raise TuningError(
            f"a budget of {budget_seconds / 60:.6g} minutes is longer than a week; "
            f"give at most {MAX_BUDGET_SECONDS / 60:.0f} (--budget-minutes)"
        )
    if max_trials is not None and max_trials < 1:
        raise TuningError(f"--trials must be at least 1, got {max_trials}")
    if max_trials is not None and max_trials > MAX_TRIALS:
        raise TuningError(f"--trials must be at most {MAX_TRIALS:,}, got {max_trials}")


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """Optuna's RDB storage at ``url`` (None: in memory); a URL it cannot open is a
    ``TuningError`` that says so, not a driver traceback. The URL's password is never
    part of the message (``hide_password``)."""
    if url is None:
        return None
    try:
        _refuse_foreign_database(url)
        return optuna.storages.RDBStorage(url)
    except RuntimeError as exc:  # Optuna's check of its schema version (``alembic_version``)
        raise TuningError(
            without_password(f"cannot open the study storage {masked_url(url)!r}: {exc}", url)
            + f" {_OWN_DATABASE}"
        ) from exc
    except (ImportError, ValueError, SQLAlchemyError) as exc:
        why = _one_line(exc)
        raise TuningError(
            without_password(f"cannot open the study storage {masked_url(url)!r}: {why}", url)
        ) from exc


def _one_line(exc: BaseException) -> str:
    """A driver error as one line: the driver's own text (not SQLAlchemy's wrapping with
    the statement and its "Background on this error at: https://sqlalche.me/..." link),
    its lines joined."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    lines = [line.strip() for line in text.splitlines()]
    return "; ".join(
        line for line in lines if line and not line.startswith("(Background on this error")
    )


#: What to do when ``--storage`` names a database another application versions.
_OWN_DATABASE = (
    "Give --storage a database of its own for the study (the service's tune jobs keep "
    "theirs in the schema 'optuna' of the service database, or in genrec-optuna.db next "
    "to an embedded one: docs/tuning.md)."
)


def _refuse_foreign_database(url: str) -> None:
    """Refuse, before Optuna creates anything, a database that has an ``alembic_version``
    table and none of Optuna's: another application's (the service's own database after
    ``genrec migrate``). Optuna versions its schema in that same table, so it created
    its 12 tables there, then failed its version check with a 50-line traceback."""
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if "alembic_version" in tables and "studies" not in tables:
        raise TuningError(
            f"cannot keep the study in {masked_url(url)!r}: that database already has "
            "another application's alembic_version table (the service's own database?), "
            f"and Optuna keeps its schema version in a table of that name. {_OWN_DATABASE}"
        )


def open_search(
    data: Interactions,
    settings: SearchSettings,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    enqueue_first: bool = True,
    sampler_seed: int | None = None,
) -> Search:
    """Check ``settings`` against ``data``, build the split, create or load the study.

    With ``enqueue_first`` (the lead) one trial per candidate is enqueued when
    the study has none yet, ``skip_if_exists`` so a lead that resumes a study
    never enqueues a model's first trial twice. Helpers pass False: only the
    one process that holds the job enqueues, so two processes starting
    together cannot both do it.

    ``sampler_seed`` (default ``settings.seed``): each process sharing a study
    needs its own, or two seeded TPE samplers that see the same trials draw the
    same settings. A study in a storage (shared) samples with TPE's
    ``constant_liar``, so running trials of other processes count as bad
    results and a process does not sample right next to them.
    """
    check_budget(settings.budget_seconds, settings.max_trials)
    candidates = choose_models(settings.task, settings.models, data)
    split = tuning_split(data, settings.task, settings.split, settings.metric, settings.seed)
    models, left_out = screen(candidates, split.train, settings.task)
    if not models:
        raise TuningError(f"no candidate can train on this data: {out_line(left_out)}")
    # ERROR, not WARNING: Optuna logs each failed trial at WARNING with its whole traceback
    # (a model that cannot train on the data printed one per trial), and the search's own
    # progress line already says which trial failed and why.
    optuna.logging.set_verbosity(logging.ERROR)
    study = optuna.create_study(
        storage=open_storage(storage) if storage is None or isinstance(storage, str) else storage,
        study_name=study_name,
        direction="maximize" if split.validation.higher_is_better else "minimize",
        sampler=DroppingSampler(
            _sampler(settings.seed if sampler_seed is None else sampler_seed, storage is not None),
            left_out,
        ),
        pruner=PerModelPruner(),
        load_if_exists=True,
    )
    _check_purpose(study, _purpose(data, settings, split, candidates))
    if enqueue_first and not study.get_trials(deepcopy=False):
        for model in models:
            cls = model_class(model)
            first = {MODEL: model, **cls.search_space.defaults(cls.Config(), f"{model}.")}
            study.enqueue_trial(first, skip_if_exists=True)
    return Search(settings, models, split, study, data, left_out, _choices(study, models))


#: The study's user attribute that records what it was created for (``_purpose``).
PURPOSE_ATTR = "genrec_purpose"


def data_fingerprint(data: Interactions) -> str:
    """Record count and a sha256 over the records (users, items, ratings, timestamps, in a
    fixed order) and the id maps: the same data read again, in any row order, gives the
    same fingerprint. Cheaper than ``Interactions.fingerprint`` on a large log (no
    string per record)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    order = np.lexsort((data.ratings, data.timestamps, data.items, data.users))
    for array in (data.users, data.items, data.ratings, data.timestamps):
        h.update(np.ascontiguousarray(array[order]).tobytes())
    for ids in (data.user_ids.ids, data.item_ids.ids):
        h.update("\x1f".join(ids).encode())
        h.update(b"\x1e")
    return f"{len(data)} records, sha256 {h.hexdigest()[:16]}"


def _purpose(
    data: Interactions, settings: SearchSettings, split: TuningSplit, candidates: Sequence[str]
) -> dict[str, str]:
    """What a study's trials were measured on: their figures compare only within it."""
    record = split.record
    seed = record.get("seed")
    return {
        "data": data_fingerprint(data),
        "task": settings.task,
        "metric": str(split.validation.metric),
        "direction": "maximize" if split.validation.higher_is_better else "minimize",
        "split": str(record.get("kind")) + ("" if seed is None else f" (seed {seed})"),
        "models": ",".join(sorted(candidates)),
    }


def _check_purpose(study: optuna.Study, purpose: dict[str, str]) -> None:
    """Record ``purpose`` in a new study; refuse to resume one made for anything else.

    A study opened again (``--storage`` with a ``--study-name`` used before, or a tune
    job's retry and helpers) mixes its earlier trials into the leaderboard, so they
    must have measured the same thing: a ratings run once read an NDCG as an RMSE and
    saved a winner with it, and another ``--models`` ran models not asked for."""
    recorded = study.user_attrs.get(PURPOSE_ATTR)
    name = study.study_name
    if recorded is None:
        # A new study, or one made before this record existed (a tune job retried across
        # an upgrade): nothing to compare with, so this run's purpose becomes its own.
        study.set_user_attr(PURPOSE_ATTR, purpose)
        return
    differ = [
        f"{key} {recorded.get(key)!r} (this run: {value!r})"
        for key, value in purpose.items()
        if recorded.get(key) != value
    ]
    if differ:
        raise TuningError(
            f"study {name!r} was made for {'; '.join(differ)}: its trials do not compare "
            "with this run's; give a new --study-name, or rerun with what it was made for "
            "to resume it"
        )


def _choices(study: optuna.Study, models: list[str]) -> list[str]:
    """The model choices the study was created with (a trial has drawn from them), else
    ``models`` and any model of a trial still waiting (enqueued): a study opened again
    keeps its categorical whatever the check says now (the sampler and the objective
    leave out what the check refused)."""
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        dist = trial.distributions.get(MODEL)
        if isinstance(dist, optuna.distributions.CategoricalDistribution):
            return [str(c) for c in dist.choices]
    waiting = [t.system_attrs.get("fixed_params", {}).get(MODEL) for t in trials]
    return list(dict.fromkeys([*models, *(str(m) for m in waiting if m is not None)]))


def _sampler(seed: int, shared: bool) -> optuna.samplers.TPESampler:
    with warnings.catch_warnings():  # constant_liar is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=TPE_STARTUP_TRIALS, constant_liar=shared
        )


#: Trial states that count towards ``max_trials`` (waiting, i.e. enqueued, ones do not).
_STARTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def trials_spent(search: Search) -> bool:
    """Whether the study has started ``max_trials`` trials (any process's, running or ended)."""
    cap = search.settings.max_trials
    return cap is not None and len(search.study.get_trials(deepcopy=False, states=_STARTED)) >= cap


def search_trials(
    search: Search,
    *,
    seconds: float | None = None,
    on_trial: Callable[[TrialRecord, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    trial_attrs: Mapping[str, Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
    epoch_callbacks: Sequence[EpochCallback] = (),
    on_drop: Callable[[str, str], None] | None = None,
) -> float:
    """Run trials of ``search.study`` in this process until the search's part of the
    budget (``settings.search_seconds``) is spent; returns the seconds this process saw
    spent (``search_seconds`` minus what it started with, plus what it ran).

    ``seconds``: what is left of the search (a process joining a running search;
    default all of ``search_seconds``). ``trial_attrs`` are written on every trial this
    process runs (e.g. the worker's id). ``should_stop()`` is asked after each
    trial (e.g. the job was cancelled); ``epoch_callbacks`` run after every epoch
    of this process's fits, and what they raise (other than ``ModelError`` or
    ``RuntimeError``, a failed fit) fails the running trial and leaves the search
    with it, a stop that cannot wait for the trial to end (a tune job's lead
    checks its cancel there). ``max_trials`` counts the study's started
    trials, whoever ran them, so a fleet stops near it (each process finishes
    the trial it is running). ``on_drop(model, why)`` is called once for each
    model out of the search: first for those out already (``Search.left_out``,
    or dropped by earlier trials), then as trials drop more (``dropping``); the
    search ends when every model has left.
    """
    settings = search.settings
    total = settings.search_seconds
    left = total if seconds is None else max(0.0, seconds)
    now = clock()
    # Time since the search began, for every process alike (the report's ``elapsed``).
    started = now - (total - left)
    deadline = now + left
    # No one fit may take more than its share of the budget, so every candidate gets a turn.
    trial_seconds = total / len(search.models)
    objective = Objective(
        search.choices,
        search.split,
        clock,
        started,
        deadline,
        trial_seconds,
        trial_attrs,
        epoch_callbacks,
        search.left_out,
    )
    announced: set[str] = set()
    announce(announced, search.dropped(), on_drop)  # out before this process's first trial

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(TrialRecord.from_trial(trial), max(0.0, deadline - clock()))
        out = search.dropped()
        announce(announced, out, on_drop)
        spent = clock() >= deadline or (should_stop is not None and should_stop())
        if spent or trials_spent(search) or set(search.models) <= set(out):
            study.stop()

    if left > 0 and not (should_stop is not None and should_stop()) and not trials_spent(search):
        search.study.optimize(
            objective,
            n_trials=settings.max_trials,
            catch=(ModelError, RuntimeError),
            callbacks=[after_trial],
        )
    return clock() - started


def summarise(search: Search, seconds: float) -> SearchResult:
    """The leaderboard and report over every trial of the study (whoever ran it).

    Raises ``TuningError`` when no trial finished within the budget.
    """
    settings, validation, study = search.settings, search.split.validation, search.study
    records = [
        TrialRecord.from_trial(t)
        for t in study.get_trials(deepcopy=False)
        if t.params.get("model") in search.models
    ]
    board = leaderboard(records, search.models, validation.higher_is_better)
    dropped = search.dropped()
    if not board or board[0].value is None:
        if set(search.models) <= set(dropped):
            raise TuningError(f"no candidate can train on this data: {out_line(dropped)}")
        raise TuningError(
            "no trial finished within the budget; raise --budget-minutes or name faster --models"
        )
    report = tuning_report(
        task=settings.task,
        metric=validation.metric,
        higher_is_better=validation.higher_is_better,
        split=search.split.record,
        seed=settings.seed,
        budget_seconds=settings.budget_seconds,
        max_trials=settings.max_trials,
        seconds=seconds,
        study_name=study.study_name,
        board=board,
        records=records,
        dropped=dropped,
    )
    return SearchResult(study, search.models, records, board, report)


def confirm(
    search: Search,
    result: SearchResult,
    seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_fold: Callable[[Finalist, Fold], None] | None = None,
) -> SearchResult:
    """Re-validate the finalists of ``result`` within ``seconds`` (``confirm``); the
    result with the leaderboard re-ranked by the finalists' means and the report's
    ``confirmation``. Without confirmation (one fold) it returns ``result`` as it is."""
    settings = search.settings
    if settings.folds < 2:
        return result
    t0 = clock()
    higher = search.split.validation.higher_is_better
    finalists = confirm_finalists(
        search.data,
        search.split,
        choose_finalists(result.board, result.records, higher),
        task=settings.task,
        split_name=settings.split,
        metric=settings.metric,
        seed=settings.seed,
        folds=settings.folds,
        seconds=seconds,
        clock=clock,
        on_fold=on_fold,
    )
    board = rerank(result.board, finalists)
    report = dict(result.report)
    report["confirmation"] = confirmation_record(finalists, settings.folds, clock() - t0)
    report["winner"] = asdict(board[0])
    report["leaderboard"] = [asdict(e) for e in board]
    report["seconds"] = round(float(report["seconds"]) + clock() - t0, 3)
    return SearchResult(result.study, result.models, result.records, board, report)


def run_search(
    data: Interactions,
    settings: SearchSettings,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    on_trial: Callable[[TrialRecord, float], None] | None = None,
    on_fold: Callable[[Finalist, Fold], None] | None = None,
    on_drop: Callable[[str, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Search ``settings.models`` on a validation split of ``data``; see the module doc.

    ``on_trial(record, seconds_left)`` is called after every trial this
    process ran, ``on_fold(finalist, fold)`` after every confirmation fit,
    ``on_drop(model, why)`` once for each candidate out of the search (left out
    before it starts, or dropped by its trials). Raises ``TuningError`` for bad
    input, when no candidate can train on the data and when no trial finished
    within the budget.
    """
    started = clock()
    search = open_search(data, settings, storage=storage, study_name=study_name)
    seconds = search_trials(search, on_trial=on_trial, clock=clock, on_drop=on_drop)
    result = summarise(search, seconds)
    left = settings.budget_seconds - (clock() - started)
    return confirm(search, result, left, clock=clock, on_fold=on_fold)
