"""One rank of ``test_train_distributed``'s log-read test, as torchrun starts it:
``python -m tests.app.cli.train_rank OUT_DIR genrec-args...``.

It runs ``genrec`` with ``genrec-args`` (a ``train --data db``), after making the log's
read time answer an instant of this rank's own (the database's cutoff less the rank in
seconds: ranks asking at different moments, or of different replicas, get different
answers), and writes ``OUT_DIR/rank<R>.json`` when the command ends: the instants this
rank asked the database for (``asked``) and the instants it read the log up to
(``read_until``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from app.cli import app
from models_store import iso_utc
from training.data import log_reader


def main(out_dir: Path, args: list[str]) -> None:
    rank = int(os.environ["RANK"])
    asked: list[str] = []
    read_until: list[str | None] = []
    real_cutoff = log_reader.log_cutoff

    def cutoff(database_url: str) -> datetime:
        instant = real_cutoff(database_url) - timedelta(seconds=rank)
        asked.append(iso_utc(instant))
        return instant

    train_module = importlib.import_module("app.cli.train")
    real_load = train_module.load_data

    def load_data(
        spec: str, config: object, until: datetime | None = None, **options: object
    ) -> object:
        read_until.append(None if until is None else iso_utc(until))
        return real_load(spec, config, until=until, **options)

    log_reader.log_cutoff = cutoff  # type: ignore[assignment]
    train_module.load_data = load_data
    try:
        app(args)  # exits with the command's code
    finally:
        record = {"asked": asked, "read_until": read_until}
        (out_dir / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
