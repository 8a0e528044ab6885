"""What every ``genrec`` command shares: the consoles, settings, error lines, data and store.

The CLI is the one place that reads the service's ``Settings``; it hands
``training`` and ``models_store`` plain values (paths, URLs), so the offline
package never needs the web stack.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

if TYPE_CHECKING:
    from datetime import datetime

    from pydantic import ValidationError

    from app.core.config import Settings
    from models_store import ModelStore
    from training.data.interactions import Interactions
    from training.models.base import EpochReport

#: The width of output that is not a terminal (a pipe, a file, ``docker compose exec -T``).
#: rich assumes 80 columns there and shortens table cells to fit ("2026-12-07T…"), so
#: ``genrec models list | grep`` read cut dates and metrics; a script needs every cell
#: whole, and a table is only as wide as its cells (rich tables do not expand).
PIPE_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    """A console that wraps no line (``soft_wrap``) and, when its stream is not a
    terminal and ``COLUMNS`` does not say a width, shortens no table cell either. A
    terminal keeps its own width: a table wider than the screen is cut to fit there."""
    made = Console(stderr=stderr, soft_wrap=True)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        made.width = PIPE_WIDTH
    return made


#: Progress and errors (stderr), so stdout carries only results a script may read.
console = _console(stderr=True)
#: Results (stdout).
out = _console(stderr=False)


def settings() -> Settings:
    """The service's settings; a bad ``GENREC_*`` value ends the command with one error
    line per problem, naming the variable and what it accepts (pydantic's own report is a
    50-line traceback that names the field, not the variable an operator sets)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from app.core.config import export_training_settings, get_settings

    try:
        config = get_settings()
    except ValidationError as exc:
        problems = settings_problems(exc)
    except SettingsError as exc:  # a value that is not even JSON (dicts, lists)
        problems = [_unparsable_setting(exc)]
    else:
        export_training_settings(config)  # .env values reach what training reads itself
        return config
    for problem in problems[:-1]:
        fail(problem)
    raise fail(problems[-1]) from None


#: Settings whose values may hold a password or a token: never echoed in an error line.
_SECRET_SETTINGS = ("admin_token", "api_keys", "database_url", "redis_url")


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per invalid setting: ``GENREC_MAX_K: Input should be greater than 0 (got '-1')``."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        # A validator of ours already quotes the value; pydantic's built-in checks do not.
        if error["type"] != "value_error" and field not in _SECRET_SETTINGS:
            message += f" (got {error['input']!r})"
        # A check across settings (a model validator) has no location: its message names
        # the variables itself ("GENREC_: ..." was printed before it).
        lines.append(f"GENREC_{field.upper()}: {message}" if field else message)
    return lines


def _unparsable_setting(exc: Exception) -> str:
    """pydantic-settings' "error parsing value for field ..." as one line naming the variable."""
    import re

    found = re.search(r'field "(\w+)"', str(exc))
    name = f"GENREC_{found.group(1).upper()}" if found else "a GENREC_* setting"
    what = "is not valid JSON" if "error parsing" in str(exc) else "cannot be read"
    reason = f": {exc.__cause__}" if exc.__cause__ else ""
    return f"{name} {what}{reason}"


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red error line; the caller raises the returned exit (code 2).

    The message is printed literally, never read as rich markup: it often quotes what
    the user typed or a pattern such as ``[a-z0-9_.-]``, which markup would swallow
    or crash on (``MarkupError``)."""
    console.print(Text.assemble(("error:", "bold red"), " ", message))
    return typer.Exit(code=2)


def os_problem(exc: OSError) -> str:
    """``PATH: reason`` for an OS error, or its own text when it names no path (our own
    ``FileNotFoundError`` messages already say which file)."""
    if exc.filename is None:
        return str(exc)
    target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
    return f"{exc.filename}{target}: {exc.strerror or exc}"


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's own errors, and any OS error on a path (a store whose layout was
    damaged by hand: a file where a directory belongs, a symlink loop, no permission),
    into one red line and exit code 2, never a traceback."""
    from models_store.errors import StoreError
    from training.data.errors import DataError
    from training.data.splits import SplitError
    from training.evaluate import EvaluationError
    from training.models.base import ModelError
    from training.protocols import ProtocolError
    from training.stored_evaluation import StoredEvaluationError

    try:
        yield
    except (
        StoreError,
        DataError,
        ModelError,
        ProtocolError,
        SplitError,
        EvaluationError,
        StoredEvaluationError,
    ) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # a store or data path that is a file, a loop, unreadable, ...
        raise fail(os_problem(exc)) from None


def interrupted(
    quiet: bool = False, code: int = 130, line: str = "interrupted; nothing saved"
) -> typer.Exit:
    """What a command stopped by Ctrl-C (or SIGTERM) before saving anything ends with:
    one ``line`` (what was kept, if anything), unless ``quiet`` (a rank of ``train
    --nproc``: its launcher says it), and the shell's exit code for the signal (130 for
    Ctrl-C)."""
    if not quiet:
        console.print(line, markup=False)
    return typer.Exit(code=code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C's ``KeyboardInterrupt`` is."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's code for the signal that stopped the command: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)


@contextmanager
def sigterm_as_interrupt(install: bool = True) -> Iterator[None]:
    """SIGTERM inside the block raises ``Terminated``, a ``KeyboardInterrupt``.

    Why: SIGTERM (``docker stop``, a scheduler's time limit) killed a command outright: no
    line, and no ``finally`` ran (a store's staging folder, an index file half written
    stayed for the next command to notice). Raised as an exception, it unwinds the command
    as Ctrl-C does. Installed only in the main thread (Python runs handlers there alone)
    and when ``install``; the previous handler is restored after.
    """
    previous = None
    if install and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def one_line_on_interrupt(
    quiet: bool = False, line: str = "interrupted; nothing saved"
) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block ends the command with ``interrupted``'s ``line``
    and the shell's code for the signal (130, 143); typer's own handling exits 130 without
    a word, which reads as if the command had finished.

    A rank of ``train --nproc`` (``quiet``) keeps SIGTERM's default: torchrun stops its
    ranks with SIGTERM and expects them gone at once.
    """
    try:
        with sigterm_as_interrupt(install=not quiet):
            yield
    except KeyboardInterrupt as stop:
        raise interrupted(quiet, code=exit_code(stop), line=line) from None


def parse_sets(values: list[str] | None, flag: str = "--set") -> dict[str, str]:
    """``--set key=value`` options as a dict. A key given twice is refused: the last one
    silently won, so a value typed earlier on a long command line was dropped unseen."""
    overrides: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"{flag} expects key=value, got {item!r}")
        key, value = key.strip(), value.strip()
        if key in overrides:
            raise fail(
                f"{flag} {key} is given twice ({key}={overrides[key]} and {key}={value}); "
                "give each key once"
            )
        overrides[key] = value
    return overrides


def epoch_printer(prefix: str = "") -> Callable[[EpochReport], None]:
    def show(report: EpochReport) -> None:
        losses = "  ".join(f"{k}={v:.4f}" for k, v in report.losses.items())
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in report.metrics.items())
        best = " [green]*best[/]" if report.is_best and report.metrics else ""
        console.print(
            f"{prefix}epoch {report.epoch:>3}/{report.epochs}  {losses}  {metrics}{best}"
            f"  [dim]({report.seconds:.2f}s)[/]"
        )

    return show


def data_dir(config: Settings) -> Path | None:
    return Path(config.data_dir) if config.data_dir else None


def load_data(
    spec: str, config: Settings, until: datetime | None = None, *, ratings_only: bool = False
) -> Interactions:
    """The data set ``spec`` names; ``until`` bounds a read of the log (``log_read_time``),
    ``ratings_only`` (for a rating model) leaves out the log's unrated rows when it holds
    ratings (``training.data.log_reader``)."""
    from training.data.datasets import load_dataset

    console.print(f"loading data [bold]{escape(spec)}[/] ...")
    data = load_dataset(
        spec,
        data_dir=data_dir(config),
        cache_dir=Path(config.cache_dir) if config.cache_dir else None,
        database_url=config.database_url,
        until=until,
        ratings_only=ratings_only,
    )
    console.print(
        f"  {len(data):,} interactions, {data.n_users:,} users, {data.n_items:,} items"
        f" ({'ratings' if data.explicit else 'implicit'})"
    )
    return data


def log_read_time(spec: str, config: Settings) -> datetime | None:
    """The cutoff of a command's read of the log ``spec`` names, None for a file or named set.

    The log's own ``log_cutoff``, as a retrain job's (the database's clock less the
    commit margin; a database error is the one-line ``DataError`` a read's would be).
    The read is bounded by this instant and the version records it as when it read the
    log (``training.pipeline.save_trained``), as a retrain job's does: serving then
    knows the version holds no row of a user erased before it, and folds in exactly
    the rows the read did not take (the newest event time, the cutoff otherwise, also
    let serving count again an event that arrived late, before the read)."""
    from training.data.datasets import log_database_url, names_log
    from training.data.log_reader import log_cutoff

    if not names_log(spec):
        return None
    return log_cutoff(log_database_url(config.database_url))


def check_data(spec: str, config: Settings) -> None:
    """Refuse a data spec that cannot be loaded, reading no records (``check_dataset``): an
    unknown spec or suffix, a file that is missing, unreadable or without the required
    columns, a named set neither on disk nor downloadable (fetched here), a database that
    cannot be reached.

    ``train --nproc N`` calls it before torchrun starts the ranks: a rank's error comes
    wrapped in every rank's traceback and torchrun's report, some 50 lines.
    """
    from training.data.datasets import check_dataset

    check_dataset(
        spec,
        data_dir=data_dir(config),
        cache_dir=Path(config.cache_dir) if config.cache_dir else None,
        database_url=config.database_url,
    )


def store(config: Settings, *, writable: bool = False) -> ModelStore:
    """The model store at ``GENREC_STORE_DIR``. A root that is not a directory is one
    line (a listing showed an empty table and exit 0); with ``writable`` (a command that
    will save a version) the root must also exist or be creatable and take a new file,
    checked before the training or search that would have ended in the failed save."""
    from models_store import ModelStore

    root = Path(config.store_dir)
    if writable:
        writable_folder(root, "GENREC_STORE_DIR")
    elif _exists(root) and not root.is_dir():
        raise fail(f"GENREC_STORE_DIR: {root} is not a directory")
    return ModelStore(root)


def writable_folder(folder: Path, what: str) -> None:
    """Refuse, as one line naming ``what``, a folder a command will write into that is not a
    directory, cannot be created, or takes no new file; create it when missing."""
    import tempfile

    if _exists(folder) and not folder.is_dir():
        raise fail(f"{what}: {folder} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"{what}: cannot create {folder}: {exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".genrec-write-check-"):
            pass
    except OSError as exc:
        raise fail(f"{what}: cannot write in {folder}: {exc.strerror or exc}") from None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # no permission on a folder above it: the write check says so
        return False
