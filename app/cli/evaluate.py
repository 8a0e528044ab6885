"""``genrec evaluate``: a model through a paper's protocol, or a stored version on its held-out slice.

``--model NAME --protocol P`` trains NAME from scratch on each seed's split
of P and prints the protocol's report (docs/protocols.md). ``--model
NAME@VERSION`` (a number or an alias) measures that stored version, without
retraining, on the part of its data it was not trained on
(``training.stored_evaluation``); the protocol flags do not apply to it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    data_dir,
    epoch_printer,
    fail,
    load_data,
    one_line_on_interrupt,
    parse_sets,
    settings,
    store,
    user_errors,
)
from training.run_limits import MAX_THREADS


def evaluate(
    model: Annotated[
        str,
        typer.Option(
            help="model name, trained from scratch by the protocol; or NAME@VERSION "
            "(number or alias): that stored version, measured on the slice it was not trained on"
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            help="ml-100k|ml-1m|...|PATH.csv|PATH.parquet|db|irgan-ml-100k "
            "(for NAME@VERSION: the data it was trained on)"
        ),
    ],
    protocol: Annotated[
        str | None,
        typer.Option(help="evaluation protocol (see docs/protocols.md); not with NAME@VERSION"),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="comma-separated split/training seeds (default 0)")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="hyper-parameter override key=value")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="protocol option key=value")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, max=MAX_THREADS, help="torch CPU threads")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report as JSON")
    ] = None,
) -> None:
    """Run MODEL through an evaluation PROTOCOL, or measure a stored NAME@VERSION; print the report.

    With --protocol the model is trained from scratch on each seed's split;
    docs/protocols.md describes every protocol and docs/accuracy.md quotes
    these reports. NAME@VERSION is measured on the slice of DATA its training
    held out (DATA must be the data it was trained on).
    """
    _check_json_target(json_out)
    import torch

    from training.stored_evaluation import split_ref

    if threads:
        torch.set_num_threads(threads)
    with user_errors():
        name, ref = split_ref(model)
    if ref is not None:
        flags = {
            "--protocol": protocol is not None,
            "--seeds": seeds is not None,  # --seeds "" is given too
            "--set": bool(set_),
            "--option": bool(option),
        }
        given = [flag for flag, value in flags.items() if value]
        if given:
            raise fail(
                f"{', '.join(given)} apply to training from scratch; {model} is a stored version, "
                "measured as it is on the slice it was not trained on (drop them, or give the "
                "model without @VERSION)"
            )
        with one_line_on_interrupt(line=_INTERRUPTED):
            _evaluate_stored(name, ref, data, json_out)
        return
    if protocol is None:
        raise fail("--protocol is required to evaluate a model by name (see docs/protocols.md)")
    with one_line_on_interrupt(line=_INTERRUPTED):
        _evaluate_protocol(
            name, data, protocol, "0" if seeds is None else seeds, set_, option, json_out
        )


#: An evaluation stopped by Ctrl-C: nothing is stored, and no report is printed.
_INTERRUPTED = "interrupted; no report"


def _check_json_target(json_out: Path | None) -> None:
    """Refuse a --json path that cannot be written before the evaluation runs: the report
    is written last, so a typo there used to cost the whole run and end in a traceback."""
    if json_out is None:
        return
    if json_out.is_dir():
        raise fail(f"--json {json_out}: is a directory; give a file path such as report.json")
    folder = json_out.parent
    if not folder.is_dir():
        raise fail(f"--json {json_out}: folder {folder} does not exist")


def _evaluate_protocol(
    model: str,
    data: str,
    protocol: str,
    seeds: str,
    set_: list[str] | None,
    option: list[str] | None,
    json_out: Path | None,
) -> None:
    from training.protocols import PROTOCOLS

    config = settings()
    with user_errors():
        if protocol not in PROTOCOLS:
            raise fail(f"unknown protocol '{protocol}'; known: {', '.join(sorted(PROTOCOLS))}")
        report = PROTOCOLS[protocol].run(
            model,
            data,
            seeds=_parse_seeds(seeds),
            overrides=parse_sets(set_),
            data_dir=data_dir(config),
            callbacks=[epoch_printer("  ")],
            options=parse_sets(option, "--option"),
            database_url=config.database_url,  # --data db: the log genrec train reads
        )
    sys.stdout.write(report.to_markdown())
    if json_out:
        with user_errors():  # e.g. no permission: checked only by writing
            json_out.write_text(report.to_json())


def _parse_seeds(seeds: str) -> list[int]:
    """``--seeds 0,1,2`` as integers. Empty items were skipped, so ``--seeds ""`` ran the
    default seed 0 and ``--seeds ,`` no run at all; both are refused, as is any item that
    is not an integer (the protocol checks the values: range, repeats)."""
    if not seeds.strip():
        raise fail("--seeds is empty; give seeds separated by commas, e.g. 0,1,2")
    try:
        return [int(s) for s in seeds.split(",")]
    except ValueError:
        raise fail(
            f"--seeds expects integers separated by commas like 0,1,2, got {seeds!r}"
        ) from None


def _evaluate_stored(model: str, ref: str, data: str, json_out: Path | None) -> None:
    from app.serving.erased import log_read_at
    from training.data.datasets import names_log
    from training.models import trains_on_ratings
    from training.stored_evaluation import evaluate_loaded, open_stored

    config = settings()
    with user_errors():
        # An unknown or unreadable version (a manifest that does not parse, a missing file, a
        # checksum mismatch) fails before the data load, not after it.
        loaded = open_stored(store(config), model, ref)
        # The log up to the version's own cutoff, as its read took it: rows logged since,
        # and those of the commit margin before the read (``log_cutoff``), are not its data.
        until = log_read_at(loaded.manifest) if names_log(data) else None
        interactions = load_data(data, config, until=until, ratings_only=trains_on_ratings(model))
        result = evaluate_loaded(loaded, interactions, source=data)
    lines = [
        f"## {result.model} version {result.version} on its held-out slice of {result.source}",
        "",
        f"{result.n_train:,} interactions trained on, {result.n_heldout:,} held out and measured "
        "here (the slice also picked the kept epoch: these are validation figures).",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v:.4f} |" for k, v in result.metrics.items()),
        "",
    ]
    if result.by_activity is not None:
        lines += [
            "### By user activity (training interactions per user)",
            "",
            "Each segment's mean over its users; a mean over few users is noisy, so weigh it "
            "by the user count beside it.",
            "",
            result.by_activity.to_markdown(),
        ]
    sys.stdout.write("\n".join(lines))
    if json_out:
        with user_errors():  # e.g. no permission: checked only by writing
            json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
