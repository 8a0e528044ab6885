"""Plot serve_bench tables: req/s and p99 against connections, one line per (run, endpoint).

Reads the markdown tables that ``benchmarks/serve_bench.py`` prints (saved with
``> file.txt``), labelled ``LABEL=PATH`` on the command line, and draws two
panels (throughput, p99 latency) with every measured concurrency as a tick:

    python benchmarks/plot_serve.py --out docs/img/serve_prod_speed.png \\
        --endpoints predict,interactions \\
        "before, Postgres+Redis=docs/data/serve/before-pg.txt" \\
        "after, Postgres+Redis=docs/data/serve/after-pg.txt"

Both y axes start at zero (no magnified noise), unless ``--log-y`` asks for
logarithmic ones with labelled decades (runs that differ by orders of
magnitude, like a CPU and a GPU at a million items); the x axis is
logarithmic with the measured connection counts as labelled ticks.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter


def read_table(path: Path) -> dict[tuple[str, int], tuple[float, float]]:
    """(endpoint, connections) -> (req/s, p99 ms) from one serve_bench output."""
    cells: dict[tuple[str, int], tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) < 6 or not parts[1].isdigit():
            continue
        cells[(parts[0], int(parts[1]))] = (float(parts[2]), float(parts[5]))
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH of a serve_bench output")
    parser.add_argument("--endpoints", default="predict,interactions")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--log-y", action="store_true", help="logarithmic y axes")
    args = parser.parse_args()
    endpoints = args.endpoints.split(",")
    fig, axes = plt.subplots(len(endpoints), 2, figsize=(11, 3.6 * len(endpoints)), squeeze=False)
    runs = [
        (label, read_table(Path(path))) for label, _, path in (r.partition("=") for r in args.runs)
    ]
    levels: set[int] = set()
    for row, endpoint in enumerate(endpoints):
        ax_rps, ax_p99 = axes[row]
        for n, (label, cells) in enumerate(runs):
            conc = sorted(c for e, c in cells if e == endpoint)
            if not conc:
                continue
            levels.update(conc)
            style = {
                "marker": "os^v"[n % 4],
                "color": f"C{n}",
                "linestyle": "--" if "before" in label else "-",
            }
            ax_rps.plot(conc, [cells[(endpoint, c)][0] for c in conc], label=label, **style)  # type: ignore[arg-type]
            ax_p99.plot(conc, [cells[(endpoint, c)][1] for c in conc], label=label, **style)  # type: ignore[arg-type]
        ax_rps.set_title(f"{endpoint}: throughput", fontsize=9)
        ax_p99.set_title(f"{endpoint}: p99 latency", fontsize=9)
        if len(runs) <= 4:  # more would cover the lines: one legend under the figure instead
            ax_rps.legend(fontsize=7)
    ticks = sorted(levels)
    for ax, ylabel in [
        (a, y) for r in axes for a, y in zip(r, ("requests/s", "p99 latency (ms)"), strict=True)
    ]:
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("concurrent connections (closed loop)")
        ax.set_ylabel(ylabel)
        if args.log_y:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    below = len(runs) > 4
    if below:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07 * ((len(runs) + 2) // 3) / len(endpoints) if below else 0, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
