"""What the catalog sync's per-item structures cost a server at a large catalog.

Each server keeps, per catalog item, what ``app.catalog.sync.CatalogSync`` reads
from the items table: the catalog's titles (``app.serving.titles.CatalogTitles``),
the attributes business rules compile against (``app.rules.catalog.AttributeIndex``)
and the removed ids (``app.serving.removed.RemovedItems``). This builds a synthetic
catalog of ``--items`` items (titles of ~30 characters, one to three of 18 genres, a
year; ``--removed-share`` of them removed) and feeds it to ``CatalogSync._merge``,
the sync's own code path: pages of ``--page-size`` rows (the first read), each row
made afresh (attributes decoded from JSON per row, as the database driver hands them
over), then ``--repeat`` incremental pages of ``--changes`` changed items (a new title
and year, one in ten of them removed). A row per structure has the two others
replaced by a stub that takes nothing; "sync" keeps all three (their strings shared);
"none" stubs all three: what ``_merge`` costs beside them (a ``TextItem`` per row),
included in every row's times. One model is loaded, holding the first
``--model-share`` of the items with their catalog titles (its own strings, as read
from its ``items.json``).

Each structure is measured in a process of its own, twice (``--passes``): once timed
(no tracing; RSS read from /proc), once under ``tracemalloc`` (the Python heap it keeps
and the peak while it is built or updated). Times are the feeding thread's CPU time
(``time.thread_time``: what the sync's thread spends, not what other processes on a
busy host take from it). Prints one table; "-" where a pass was not run.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/catalog_memory.py --items 1000000
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

STRUCTURES = ("none", "titles", "attributes", "removed", "sync")
GENRES = [
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
WORDS = [
    "Midnight", "River", "Silent", "Garden", "Broken", "Empire", "Golden", "Shadow",
    "Winter", "Harbor", "Crimson", "Journey", "Hidden", "Valley", "Last", "Summer",
]  # fmt: skip
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def title_of(n: int, version: int) -> str:
    words = WORDS[n % 16], WORDS[(n // 16) % 16], WORDS[(n // 256) % 16]
    return f"The {words[0]} {words[1]} {words[2]} ({1950 + n % 75 + version})"


def make_row(n: int, version: int, removed_share: float) -> Any:
    """Item ``n`` as the database would hand it over (fresh strings, JSON-decoded
    attributes); ``version`` > 0: changed ``version`` times since the first read."""
    from app.repository import ItemRow

    title = title_of(n, version)
    genres = [GENRES[(n * k) % 18] for k in range(1, 2 + n % 3)]
    attributes = json.loads(json.dumps({"genres": genres, "year": 1950 + n % 75 + version}))
    removed = n % max(1, round(1 / removed_share)) == 0 if removed_share > 0 else False
    if version:
        removed = n % 10 == 0  # one in ten of a change's items is (still) removed
    stamp = T0 + timedelta(seconds=n + version)
    return ItemRow(
        item_id=f"item-{n:08d}",
        title=title,
        text=None,
        attributes=attributes,
        created_at=stamp,
        updated_at=stamp,
        change_epoch=1 + version,
        removed_at=stamp if removed else None,
    )


class _Stub:
    """A structure that takes nothing: ``_merge``'s generator for it is never run."""

    def update(self, rows: object) -> int:
        return 0


def model(items: int, share: float) -> Any:
    """What ``_merge`` may read of a loaded model: its ids and titles, its own objects."""
    held = int(items * share)
    item_ids = [f"item-{n:08d}" for n in range(held)]
    titles = [title_of(n, 0) for n in range(held)]
    return SimpleNamespace(
        name="m",
        item_ids=item_ids,
        item_index={i: n for n, i in enumerate(item_ids)},
        titles=titles,
    )


def feeder(structure: str, loaded: Any) -> tuple[Any, Callable[[list[Any]], object]]:
    """The sync and its ``_merge``, every structure but ``structure`` stubbed."""
    from app.catalog.sync import CatalogSync

    holder = SimpleNamespace(loaded=lambda: [loaded])
    sync = CatalogSync(cast(Any, None), cast(Any, holder), interval_s=3600.0)
    for name in ("titles", "attributes", "removed"):
        if structure not in (name, "sync"):
            setattr(sync, name, _Stub())
    return sync, sync._merge


def pages(items: int, page_size: int, removed_share: float) -> Iterator[list[Any]]:
    for start in range(0, items, page_size):
        yield [make_row(n, 0, removed_share) for n in range(start, min(items, start + page_size))]


def change_page(items: int, changes: int, round_: int) -> list[Any]:
    """``changes`` items spread over the catalog, a different set each round."""
    step = max(1, items // changes)
    return [make_row((k * step + round_) % items, round_ + 1, 0) for k in range(changes)]


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(args: argparse.Namespace) -> dict[str, float]:
    """One structure, in this process: build, then incremental pages; timed or traced."""
    loaded = model(args.items, args.model_share)
    kept, feed = feeder(args.worker, loaded)
    gc.collect()
    trace = args.trace
    base_rss = rss()
    if trace:
        tracemalloc.start()
    build_s = 0.0
    for rows in pages(args.items, args.page_size, args.removed_share):
        started = time.thread_time()
        feed(rows)
        build_s += time.thread_time() - started
        del rows
    out: dict[str, float] = {"build_s": build_s}
    gc.collect()
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        out |= {"kept": current, "build_peak": peak}
    else:
        out |= {"rss_kept": rss() - base_rss}
    times, peaks = [], []
    for round_ in range(args.repeat):
        rows = change_page(args.items, args.changes, round_)
        if trace:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        started = time.thread_time()
        feed(rows)
        times.append(time.thread_time() - started)
        if trace:
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
        del rows
    out["change_ms"] = statistics.median(times) * 1000
    if trace:
        out["change_peak"] = max(peaks)
        tracemalloc.stop()
    else:
        # ru_maxrss: the whole process's peak, in KiB on Linux
        out["rss_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    del kept
    return out


def run_worker(args: argparse.Namespace, structure: str, trace: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", structure, "--items", str(args.items)]
    command += ["--changes", str(args.changes), "--page-size", str(args.page_size)]
    command += ["--repeat", str(args.repeat), "--removed-share", str(args.removed_share)]
    command += ["--model-share", str(args.model_share)]
    command += ["--trace"] if trace else []
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return cast(dict[str, float], json.loads(done.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1000)  # CatalogSync's default
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--removed-share", type=float, default=0.01)
    parser.add_argument("--model-share", type=float, default=0.9)
    parser.add_argument("--structures", default=",".join(STRUCTURES))
    parser.add_argument("--passes", default="timed,traced", help="timed, traced or both")
    parser.add_argument("--worker", choices=STRUCTURES, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    mb = 1e6
    print(
        f"items={args.items:,} page_size={args.page_size} changes={args.changes} "
        f"repeat={args.repeat} removed_share={args.removed_share} "
        f"model_share={args.model_share} passes={args.passes} python={sys.version.split()[0]}"
    )
    print(
        "| structure | kept, MB (tracemalloc) | bytes/item | build peak, MB | RSS kept, MB "
        "| RSS peak, MB | full build, CPU s | change of "
        f"{args.changes:,}: CPU ms (median) | its peak, MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    passes = args.passes.split(",")
    for structure in args.structures.split(","):
        timed = run_worker(args, structure, trace=False) if "timed" in passes else {}
        traced = run_worker(args, structure, trace=True) if "traced" in passes else {}

        def cell(figures: dict[str, float], key: str, scale: float, digits: int) -> str:
            return f"{figures[key] / scale:,.{digits}f}" if key in figures else "-"

        print(
            f"| {structure} | {cell(traced, 'kept', mb, 1)} | {cell(traced, 'kept', args.items, 0)} "
            f"| {cell(traced, 'build_peak', mb, 1)} | {cell(timed, 'rss_kept', mb, 1)} "
            f"| {cell(timed, 'rss_peak', mb, 1)} | {cell(timed, 'build_s', 1, 2)} "
            f"| {cell(timed, 'change_ms', 1, 2)} | {cell(traced, 'change_peak', mb, 1)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
