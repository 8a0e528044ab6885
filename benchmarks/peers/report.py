"""Tables (markdown), the plot's data (JSON) and the speed-up figures from scored rows.

The rows are written to ``results.json`` with everything a reader needs to
redo them (command, machine, thread count, versions); ``plot.py`` draws the
accuracy-vs-training-time figure from that file inside the peers' venv, where
matplotlib lives (genrec does not depend on it).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.peers.score import HEADLINE, SELECT, Row

PEER_ORDER = ("genrec", "recbole", "cornac", "surprise")


def machine(threads: int) -> dict[str, Any]:
    """Where the figures were taken (load average: the machine is shared)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "load_average_1_5_15": [round(x, 2) for x in load],
    }


def _sort_key(row: Row) -> tuple[int, str, int]:
    order = list(PEER_ORDER)
    peer = order.index(row.peer) if row.peer in order else len(order)
    return (list(HEADLINE).index(row.protocol) if row.protocol in HEADLINE else 9, row.model, peer)


def speedups(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Per (protocol, model, peer): peer's seconds per epoch / genrec's (wall and CPU)."""
    ours = {(r.protocol, r.model): r for r in rows if r.peer == "genrec"}
    out = []
    for r in rows:
        base = ours.get((r.protocol, r.model))
        if r.peer == "genrec" or base is None or base.seconds_per_epoch <= 0:
            continue
        out.append(
            {
                "protocol": r.protocol,
                "model": r.model,
                "peer": r.peer,
                "wall": r.seconds_per_epoch / base.seconds_per_epoch,
                "cpu": r.cpu_seconds_per_epoch / max(base.cpu_seconds_per_epoch, 1e-9),
            }
        )
    return out


def markdown(rows: Sequence[Row]) -> str:
    """One table per protocol: headline metrics, then time and memory."""
    lines: list[str] = []
    for protocol in HEADLINE:
        chosen = sorted((r for r in rows if r.protocol == protocol), key=_sort_key)
        if not chosen:
            continue
        metric, higher = SELECT[protocol]
        heads = HEADLINE[protocol]
        lines += [
            f"### {protocol} (kept epoch: best validation {metric}, "
            f"{'higher' if higher else 'lower'} is better)",
            "",
            "| model | library | " + " | ".join(heads) + " | best / run epochs | s/epoch "
            "(wall) | s/epoch (CPU) | s to best (wall) | s to best (CPU) | peak RSS MiB |",
            "|---|---|" + "---:|" * (len(heads) + 6),
        ]
        for r in chosen:
            values = " | ".join(f"{r.metrics[h]:.4f}" for h in heads)
            lines.append(
                f"| {r.model} | {r.peer} | {values} | {r.best_epoch} / {r.epochs_trained} | "
                f"{r.seconds_per_epoch:.3f} | {r.cpu_seconds_per_epoch:.3f} | "
                f"{r.seconds_to_best:.1f} | {r.cpu_seconds_to_best:.1f} | {r.peak_rss_mb:.0f} |"
            )
        lines.append("")
    ups = speedups(rows)
    if ups:
        lines += [
            "### seconds per epoch, peer / genrec (> 1: genrec faster)",
            "",
            "| protocol | model | peer | wall | CPU |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {u['protocol']} | {u['model']} | {u['peer']} | {u['wall']:.2f}x | {u['cpu']:.2f}x |"
            for u in ups
        ]
        lines.append("")
    return "\n".join(lines)


def write(rows: Sequence[Row], out: Path, context: dict[str, Any]) -> tuple[Path, Path]:
    """``results.json`` (rows + context + speed-ups) and ``results.md``; returns both paths."""
    ordered = sorted(rows, key=_sort_key)
    payload = {**context, "rows": [r.to_dict() for r in ordered], "speedups": speedups(ordered)}
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    md_path.write_text(markdown(ordered))
    return json_path, md_path
