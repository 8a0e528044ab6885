"""Accuracy vs training CPU time to the kept epoch, one panel per protocol (runs in the peers' venv).

``python -m benchmarks.peers.plot RESULTS.json OUT.png`` — matplotlib is a
dependency of the benchmark's own venv, never of genrec. Reads only the JSON
that ``report.write`` produced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARKERS = {"genrec": "o", "recbole": "s", "cornac": "^", "surprise": "D"}
COLORS = {
    "genrec": "tab:blue",
    "recbole": "tab:orange",
    "cornac": "tab:green",
    "surprise": "tab:red",
}
PANELS = (("strong", "ndcg@100"), ("weak", "ndcg@5"), ("ratings", "rmse"), ("text", "rmse"))


def plot(results: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = json.loads(results.read_text())["rows"]
    panels = [(p, m) for p, m in PANELS if any(r["protocol"] == p for r in rows)]
    if not panels:
        raise ValueError(f"{results} holds no rows to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (protocol, metric) in zip(axes[0], panels, strict=True):
        for r in (r for r in rows if r["protocol"] == protocol):
            # CPU seconds: on a shared machine wall time also counts waiting for a core.
            x, y = max(r["cpu_seconds_to_best"], 1e-3), r["metrics"][metric]
            ax.scatter(
                x,
                y,
                marker=MARKERS.get(r["peer"], "x"),
                s=60,
                color=COLORS.get(r["peer"], "tab:gray"),
                label=r["peer"] if r["peer"] not in ax.get_legend_handles_labels()[1] else None,
            )
            ax.annotate(r["model"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        # A range within one or two decades would label every minor tick, on top of each other.
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("training CPU seconds to the kept epoch (log scale)")
        ax.set_ylabel(f"test {metric} ({'lower' if metric == 'rmse' else 'higher'} is better)")
        ax.set_title(protocol)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m benchmarks.peers.plot RESULTS.json OUT.png")
    print(plot(Path(sys.argv[1]), Path(sys.argv[2])))
