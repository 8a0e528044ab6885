"""CPU one query-form rule costs the event loop to parse or refuse, for the worst texts
within the per-parameter limit (4,096 characters).

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/rules_parse_cost.py`` (before/after:
the same with ``PYTHONPATH`` at another tree). Each case is parsed once (``parse_filter``
caches by text, so the cache is cleared between repeats); the figure is the median of 5.
"""

from __future__ import annotations

import statistics
import time

from app.rules.query import MAX_TEXT, parse_filter

CASES = {
    "4,000 x '!'": "!" * 4000 + "genres:a",
    "2,000 parentheses": "(" * 2000 + "genres:a" + ")" * 2000,
    "300 members of ';'": ";".join(f"genres:G{i}" for i in range(300)),
    "8 rules x 250 one-letter values": ";".join(f"a{j}:" + ",".join("v" * 250) for j in range(8)),
    "one rule, 20 values": "genres:" + ",".join(f"Genre{i}" for i in range(20)),
}


def cost_ms(text: str) -> tuple[float, str]:
    """Median CPU milliseconds of one uncached parse, and how it ended."""
    times, outcome = [], ""
    for _ in range(5):
        parse_filter.cache_clear()
        start = time.process_time()
        try:
            parse_filter(text)
            outcome = "parsed"
        except Exception as exc:  # a RuleError: the 422 a client gets
            outcome = str(exc).split(": ", 1)[-1][:60]
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times), outcome


def main() -> None:
    print(f"| text (at most {MAX_TEXT} characters) | chars | CPU ms | outcome |")
    print("|---|---|---|---|")
    for name, text in CASES.items():
        text = text[:MAX_TEXT]
        ms, outcome = cost_ms(text)
        print(f"| {name} | {len(text)} | {ms:.1f} | {outcome} |")


if __name__ == "__main__":
    main()
