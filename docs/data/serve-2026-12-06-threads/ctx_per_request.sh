#!/bin/bash
# Server CPU and context switches per request, by thread, for each kind named (wrk, 32
# connections, 10 s after 2 s of warm-up), one Postgres + Redis server on a fresh database:
# utime+stime and voluntary/involuntary switches of every thread from /proc/<pid>/task/*.
# A voluntary switch of a thread that is not waiting on I/O is, in this process, mostly a
# wait for the GIL.
#   bash docs/data/serve-2026-12-06-threads/ctx_per_request.sh recs mix
#   SRC=/tmp/shared bash docs/data/serve-2026-12-06-threads/ctx_per_request.sh mix   # a worktree
#   PREFIX="taskset -c 1" bash ...   # the server started under a command (here: on one core)
#   WRK_MIX=85:recs,15:mix-write bash ... mix   # another mix (benchmarks/wrk/serve_bench.lua)
# Needs a serve_bench store in /tmp/bench-store and py-spy in /tmp/pyspy (thread names).
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD; SRC=${SRC:-$ROOT}
W=/tmp/ctxw; rm -rf $W; mkdir -p $W
PORT=18735
db=genrec_ctx_$$
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
redis-cli -n 12 flushdb >/dev/null
(cd $SRC && exec env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true GENREC_REDIS_URL=redis://127.0.0.1:6379/12 \
  GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$db PYTHONPATH=$SRC $EXTRAENV $PREFIX $ROOT/.venv/bin/python \
  -m app.cli serve --workers 1 --port $PORT) > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
snap() { for t in /proc/$SP/task/*; do echo "$(basename $t) $(awk '{print $14+$15}' $t/stat) $(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' $t/status)"; done; }
for kind in "$@"; do
  WRK="wrk -t 2 -c 32 -s $ROOT/benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind"
  $WRK -d 2s >/dev/null
  env PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy dump -p $SP 2>/dev/null | sed -n 's/^Thread \([0-9]*\) ([^)]*): "\(.*\)"$/\1 \2/p' > $W/names
  snap > $W/before; $WRK -d ${DUR:-10}s > $W/wrk.txt; snap > $W/after
  python3 - $W $kind <<'PY'
import collections, re, sys
w, kind = sys.argv[1], sys.argv[2]
names = {}
for line in open(f"{w}/names"):
    tid, _, name = line.partition(" ")
    names[tid] = re.sub(r"_\d+$", "", name.strip().strip('"'))
vals = {}
for side in ("before", "after"):
    c = collections.defaultdict(lambda: [0, 0, 0])
    for line in open(f"{w}/{side}"):
        tid, t, v, n = line.split()
        e = c[names.get(tid, "other")]
        e[0] += int(t); e[1] += int(v); e[2] += int(n)
    vals[side] = c
text = open(f"{w}/wrk.txt").read()
req = int(re.search(r"(\d+) requests in", text).group(1)); sec = float(re.search(r"requests in ([\d.]+)s", text).group(1))
tot = [0, 0, 0]
rows = []
for k in vals["after"]:
    d = [(vals["after"][k][i] - vals["before"][k][i]) / req for i in range(3)]
    d[0] *= 10
    tot = [a + b for a, b in zip(tot, d)]
    rows.append((k, d))
print(f"== {kind}: {req/sec:.0f} req/s; CPU {tot[0]:.3f} ms/req; vol ctx {tot[1]:.2f}/req; invol {tot[2]:.2f}/req")
for k, d in sorted(rows, key=lambda r: -r[1][0]):
    if d[0] >= 0.005 or d[1] > 0.05:
        print(f"   {d[0]:6.3f} ms  vol {d[1]:5.2f}  invol {d[2]:5.2f}  {k}")
PY
done
kill $SP; wait $SP 2>/dev/null
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" 2>/dev/null
