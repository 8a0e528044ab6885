"""The PNG of a search: best figure so far over time, one line per model.

Drawn with matplotlib's Agg canvas directly (no pyplot, no display), so it
works on a headless server and in a worker.
"""

from __future__ import annotations

from pathlib import Path

from training.tuning.report import TrialRecord


def plot_search(
    records: list[TrialRecord], metric: str, higher_is_better: bool, path: Path
) -> Path:
    """Write the plot to ``path`` (PNG) and return it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    better = max if higher_is_better else min
    done = sorted(
        (r for r in records if r.value is not None and r.elapsed is not None),
        key=lambda r: r.elapsed or 0.0,
    )
    for model in sorted({r.model for r in done}):
        xs: list[float] = []
        ys: list[float] = []
        for r in done:
            if r.model != model:
                continue
            assert r.value is not None and r.elapsed is not None
            xs.append(r.elapsed)
            ys.append(r.value if not ys else better(ys[-1], r.value))
        axes.step(xs, ys, where="post", marker="o", label=model)
    pruned = [r for r in records if r.state == "pruned" and r.elapsed is not None]
    if pruned:
        axes.plot([], [], " ", label=f"({len(pruned)} pruned trials not drawn)")
    axes.set_xlabel("seconds since the search began")
    axes.set_ylabel(f"best validation {metric} so far")
    axes.set_title(f"genrec tune: {metric} ({'higher' if higher_is_better else 'lower'} is better)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(str(path), format="png")
    return path
