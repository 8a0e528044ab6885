#!/bin/bash
# py-spy of the embedded server under the mix (wrk, 32 connections): each thread's share of
# the samples (--idle: where it is, idle or not) and of the GIL-held samples (--gil).
# Needs a serve_bench store in /tmp/bench-store and py-spy (pip install --target /tmp/pyspy py-spy).
cd "$(dirname "$0")/../../.."  # the repository root
W=/tmp/prof; rm -rf $W; mkdir -p $W
PORT=18731
PYSPY="env PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy record -d 6 -r 200 -t -f raw"
env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true \
  GENREC_DATABASE_URL=sqlite:///$W/genrec.db .venv/bin/genrec serve --port $PORT --workers 1 > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
WRK="wrk -t 2 -c 32 -s benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- mix"
$WRK -d 3s >/dev/null  # warm-up
($WRK -d 12s > $W/wrk_mix.txt) &
sleep 3
$PYSPY -p $SP --idle -o $W/mix.raw >/dev/null 2>&1
$PYSPY -p $SP --gil -o $W/mix_gil.raw >/dev/null 2>&1
wait %2 2>/dev/null; kill $SP
grep "Requests/sec" $W/wrk_mix.txt
python3 - "$W" <<'PY'
import collections, re, sys
def threads(path):
    """thread name -> {leaf frame -> samples}"""
    out = collections.defaultdict(collections.Counter)
    for line in open(path):
        stack, _, n = line.rstrip().rpartition(" ")
        if stack:
            frames = stack.split(";")
            out[re.sub(r"\(0x[0-9a-f]+\)", "", frames[0]).strip()][frames[-1]] += int(n)
    return out
gil = threads(f"{sys.argv[1]}/mix_gil.raw")
total = sum(sum(c.values()) for c in gil.values())
print(f"GIL held in {total} samples; share per thread:")
for name, c in sorted(gil.items(), key=lambda kv: -sum(kv[1].values())):
    print(f"  {sum(c.values()) / total:6.1%} {name}")
main = next(c for name, c in threads(f"{sys.argv[1]}/mix.raw").items() if "MainThread" in name)
n = sum(main.values())
print(f"event loop thread: {1 - main['Runner.run (asyncio/runners.py:118)'] / n:.0%} of its samples "
      "outside uvloop's C loop; its top leaf frames:")
for leaf, k in main.most_common(6):
    print(f"  {k / n:6.1%} {leaf}")
PY
