"""Aggregates gil_profile.sh's py-spy stacks: ms of GIL held per request, by thread and by
function (inclusive: a function counts every sample it is on the stack of), recs against
the mix. One sample is 5 ms (200 Hz); requests are wrk's rate times the 8 s sampled."""

import collections
import re
import sys
from pathlib import Path

W = sys.argv[1]
THREADS = sys.argv[2].split() if len(sys.argv) > 2 else ["MainThread"]
TOP = 30


def load(kind: str) -> tuple[collections.Counter, dict, float]:
    text = Path(f"{W}/wrk_{kind}.txt").read_text()
    rate = float(text.split("Requests/sec:")[1].split()[0])
    threads: collections.Counter = collections.Counter()
    frames: dict = collections.defaultdict(collections.Counter)
    for line in Path(f"{W}/{kind}.raw").read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        parts = stack.split(";")
        name = re.sub(r"_\d+$", "", parts[0].split(": ", 1)[1])
        threads[name] += int(count)
        for frame in dict.fromkeys(p.split(" (")[0] for p in parts[1:]):
            frames[name][frame] += int(count)
    return threads, frames, rate


runs = {kind: load(kind) for kind in ("recs", "mix")}
print(f"req/s while sampled: recs {runs['recs'][2]:.0f}, mix {runs['mix'][2]:.0f}")


def per_request(kind: str, samples: int) -> float:
    return samples * 5.0 / (runs[kind][2] * 8)


print("ms of GIL per request, by thread")
names = set(runs["recs"][0]) | set(runs["mix"][0])
for kind in ("recs", "mix"):
    total = sum(per_request(kind, n) for n in runs[kind][0].values())
    held = total * runs[kind][2] / 1000
    print(f"  {kind}: {total:.3f} ms in all; the GIL held {held:.0%} of the time")
for name in sorted(names, key=lambda n: -runs["mix"][0][n]):
    recs, mix = (per_request(k, runs[k][0][name]) for k in ("recs", "mix"))
    if max(recs, mix) >= 0.0005:
        print(f"  {name:24s} recs {recs:.3f}  mix {mix:.3f}")
for name in THREADS:
    print(f"{name}: ms of GIL per request, by function (inclusive), the {TOP} largest in the mix")
    # leave out the frames every sample of the thread is under (the thread's entry point)
    whole = runs["mix"][0][name]
    frames = {f for f in set(runs["recs"][1][name]) | set(runs["mix"][1][name])}
    frames = {f for f in frames if runs["mix"][1][name][f] < 0.98 * whole}
    for frame in sorted(frames, key=lambda f: (-runs["mix"][1][name][f], f))[:TOP]:
        recs, mix = (per_request(k, runs[k][1][name][frame]) for k in ("recs", "mix"))
        print(f"  {frame[:60]:60s} recs {recs:.4f}  mix {mix:.4f}")
