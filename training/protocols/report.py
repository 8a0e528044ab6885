"""``ProtocolReport``: what a protocol run measured, per seed and aggregated.

The markdown form is what goes into ``docs/accuracy.md``; it always carries
the command that reproduces it, so a figure in the docs can be re-measured.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class SeedRun:
    """One end-to-end run (one seed, or one fixed fold)."""

    seed: int
    metrics: dict[str, float]
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    fit_seconds: float


@dataclass
class ProtocolReport:
    """Per-seed metrics of one model under one protocol, with mean and std per metric.

    ``headline`` lists the metric keys in the order the protocol's paper reports
    them; other keys (user counts, defaults used) follow in the tables.
    """

    protocol: str
    model: str
    dataset: str
    runs: list[SeedRun]
    headline: list[str]
    overrides: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    seed_label: str = "seed"

    @property
    def per_seed(self) -> list[dict[str, float]]:
        return [run.metrics for run in self.runs]

    @property
    def metric_names(self) -> list[str]:
        names = list(self.headline)
        for run in self.runs:
            names += [k for k in run.metrics if k not in names]
        return names

    @property
    def mean(self) -> dict[str, float]:
        return {k: float(np.mean(self._values(k))) for k in self.metric_names}

    @property
    def std(self) -> dict[str, float]:
        """Sample standard deviation over seeds (0 for a single run)."""
        return {
            k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
            for k, v in ((k, self._values(k)) for k in self.metric_names)
        }

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([run.seconds_per_epoch for run in self.runs]))

    @property
    def best_epochs(self) -> list[int]:
        return [run.best_epoch for run in self.runs]

    def _values(self, key: str) -> list[float]:
        return [run.metrics[key] for run in self.runs if key in run.metrics]

    def command(self) -> str:
        """The shell command that reproduces this report."""
        parts = ["genrec", "evaluate", "--protocol", self.protocol]
        parts += ["--model", self.model, "--data", self.dataset]
        if self.seed_label == "seed":
            parts += ["--seeds", ",".join(str(run.seed) for run in self.runs)]
        for key, value in sorted(self.overrides.items()):
            parts += ["--set", f"{key}={value}"]
        for key, value in sorted(self.options.items()):
            parts += ["--option", f"{key}={value}"]
        return shlex.join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "model": self.model,
            "dataset": self.dataset,
            "headline": self.headline,
            "overrides": self.overrides,
            "options": self.options,
            "seed_label": self.seed_label,
            "runs": [asdict(run) for run in self.runs],
            "mean": self.mean,
            "std": self.std,
            "seconds_per_epoch": self.seconds_per_epoch,
            "best_epochs": self.best_epochs,
            "command": self.command(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def to_markdown(self) -> str:
        """A docs/accuracy.md section: one row per metric, mean ± std and every seed."""
        labels = [f"{self.seed_label} {run.seed}" for run in self.runs]
        lines = [
            f"#### `{self.model}` — `{self.protocol}` on `{self.dataset}`",
            "",
            "| metric | mean ± std | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels),
        ]
        mean, std = self.mean, self.std
        for name in self.metric_names:
            cells = [_fmt(run.metrics.get(name)) for run in self.runs]
            lines.append(
                f"| {name} | {_fmt(mean[name])} ± {_fmt(std[name])} | " + " | ".join(cells) + " |"
            )
        epochs = ", ".join(str(e) for e in self.best_epochs)
        lines += [
            "",
            f"Best epoch per run: {epochs}; {self.seconds_per_epoch:.2f} s per epoch (mean).",
            "",
            f"Reproduce: `{self.command()}`",
            "",
        ]
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4f}"
