#!/bin/bash
# Server CPU per request, by thread, while wrk (32 connections) sends each kind in turn to
# one embedded server: utime+stime of every thread from /proc/<pid>/task/*/stat before and
# after the run, divided by the requests wrk counted; thread names from one py-spy dump.
# Counts CPU, not samples, so a thread waiting on a lock or a condition costs nothing here.
#   bash docs/data/serve-2026-12-03-mixcost/cpu_per_request.sh recs mix mix-write
# Needs a serve_bench store in /tmp/bench-store and py-spy (pip install --target /tmp/pyspy py-spy).
# DBURL and REDIS (URLs) serve from Postgres and Redis; the lines in brackets are then the CPU
# of every postgres process, of redis-server and of the whole machine, per request.
# CONNS sets wrk's connections (default 32); SERVE names a Python file to run instead of
# `genrec serve` (it is given the port; docs/data/serve-2026-12-04-cache/experiments).
# PREP is a command run before each kind's warm-up (docs/data/serve-2026-12-04-planner).
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD
SRC=${SRC:-$ROOT}  # the code to serve (SRC=/tmp/before: a worktree of the commit before)
W=/tmp/cpu-per-request; rm -rf $W; mkdir -p $W
PORT=18734
(cd $SRC && exec env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true ${REDIS:+GENREC_REDIS_URL=$REDIS} \
  GENREC_DATABASE_URL=${DBURL:-sqlite:///$W/genrec.db} PYTHONPATH=$SRC $ROOT/.venv/bin/python \
  ${SERVE:--m app.cli serve --workers 1 --port} $PORT) > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
others() {  # postgres (all its processes), redis-server, the whole machine: CPU ticks
  local pg=0 p
  for p in $(pgrep -u postgres); do pg=$((pg + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done
  echo "postgres $pg"; echo "redis $(awk '{print $14+$15}' /proc/$(pgrep -x redis-server | head -1)/stat)"
  awk '/^cpu /{print "system", $2+$3+$4+$7+$8}' /proc/stat
}
snap() { for t in /proc/$SP/task/*; do echo "$(basename $t) $(awk '{print $14+$15}' $t/stat)"; done; }
for kind in "$@"; do
  WRK="wrk -t 2 -c ${CONNS:-32} -s $ROOT/benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind"
  [ -n "$PREP" ] && eval "$PREP"
  $WRK -d 2s >/dev/null  # warm-up
  env PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy dump -p $SP 2>/dev/null \
    | sed -n 's/^Thread \([0-9]*\) ([^)]*): "\(.*\)"$/\1 \2/p' > $W/names
  snap > $W/before; others > $W/obefore; $WRK -d ${DUR:-10}s > $W/wrk.txt; snap > $W/after; others > $W/oafter
  python3 - $W $kind <<'PY'
import collections, re, sys
w, kind = sys.argv[1], sys.argv[2]
names = {}
for line in open(f"{w}/names"):
    tid, _, name = line.partition(" ")
    names[tid] = re.sub(r"_\d+$", "", name.strip().strip('"'))
ticks = {}
for side in ("before", "after"):
    ticks[side] = collections.Counter()
    for line in open(f"{w}/{side}"):
        tid, t = line.split()
        ticks[side][names.get(tid, "other")] += int(t)
text = open(f"{w}/wrk.txt").read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
seconds = float(re.search(r"requests in ([\d.]+)s", text).group(1))
hz = 100  # USER_HZ: /proc counts CPU time in 10 ms ticks
per = {k: (ticks["after"][k] - ticks["before"][k]) * 1000 / hz / requests for k in ticks["after"]}
total = sum(per.values())
cores = total * requests / seconds / 1000
print(f"== {kind}: {requests / seconds:.0f} req/s; server CPU {total:.2f} ms/request ({cores:.2f} cores)")
o = {side: dict(line.split() for line in open(f"{w}/{side}")) for side in ("obefore", "oafter")}
for k in ("postgres", "redis", "system"):
    print(f"   [{k}: {(int(o['oafter'][k]) - int(o['obefore'][k])) * 1000 / hz / requests:.3f} ms/request]")
for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
    if v >= 0.005:
        print(f"   {v:6.3f} ms  {k}")
PY
done
kill $SP; wait $SP 2>/dev/null
