"""What a catalog change costs the attribute index (``app.rules.catalog.AttributeIndex``).

Fills the index with ``--items`` items of five attributes (a list of strings, two
numbers, a list of three tags, a bool), then times ``--changes`` one-item updates
and prints the fill time and the median and p99 of a one-item change.

    python benchmarks/attribute_index.py --items 50000 --changes 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from app.rules.catalog import AttributeIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    rows = [
        (
            f"i{n}",
            {
                "genre": ["a", "b"][n % 2 :],
                "year": 1900 + n % 100,
                "price": n * 0.5,
                "tags": ["x", "y", "z"],
                "in_stock": n % 3 == 0,
            },
        )
        for n in range(args.items)
    ]
    index = AttributeIndex()
    started = time.perf_counter()
    index.update(rows)
    fill = time.perf_counter() - started
    costs = []
    for change in range(args.changes):
        started = time.perf_counter()
        index.update([(f"i{change}", {"genre": ["c"], "year": 2000 + change})])
        costs.append(time.perf_counter() - started)
    ms = np.array(costs) * 1000
    print(f"items={args.items:,} fill_s={fill:.3f} changes={args.changes}")
    print(f"one-item change: median {np.median(ms):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms")


if __name__ == "__main__":
    main()
