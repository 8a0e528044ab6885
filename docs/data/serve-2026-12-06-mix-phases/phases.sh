#!/bin/bash
# One Postgres + Redis server under wrk (32 connections, 10 s after 3 s of warm-up) sending
# KIND (mix or recs): wrk's line, then from /metrics over the run each route's mean latency
# and each model's batches (size, seconds), then phases.py's timers per thread and phase.
#   [SRC=<tree>] [EXTRAENV="K=V ..."] bash docs/data/serve-2026-12-06-mix-phases/phases.sh KIND
# Needs a serve_bench store in /tmp/bench-store.
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD; SRC=${SRC:-$PWD}; W=/tmp/mixphases; rm -rf $W; mkdir -p $W
PORT=18738; db=genrec_phases_$$; kind=${1:-mix}
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
redis-cli -n 12 flushdb >/dev/null
(cd $SRC && exec env -u GENREC_DATA_DIR PYTHONPATH=$SRC PHASES_OUT=$W/phases.txt GENREC_STORE_DIR=/tmp/bench-store \
  GENREC_BENCH_ENDPOINTS=true GENREC_REDIS_URL=redis://127.0.0.1:6379/12 \
  GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$db $EXTRAENV \
  $ROOT/.venv/bin/python $ROOT/docs/data/serve-2026-12-06-mix-phases/phases.py serve --workers 1 --port $PORT) > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
WRK="wrk -t 2 -c 32 -s $ROOT/benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind"
$WRK -d 3s >/dev/null
curl -s localhost:$PORT/metrics > $W/m0.txt; kill -USR1 $SP
echo "== $kind src=$SRC ${EXTRAENV} ($(date +%H:%M:%S))"
$WRK -d 10s | tail -1
curl -s localhost:$PORT/metrics > $W/m1.txt; kill -USR2 $SP; sleep 0.5
kill $SP; wait $SP 2>/dev/null
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" 2>/dev/null
$ROOT/.venv/bin/python - $W <<'PY'
import re, sys
def parse(path):
    found = {}
    for line in open(path):
        m = re.match(r"(\S+?)(\{.*\})? (\S+)$", line.strip())
        if m and not line.startswith("#"):
            found[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return found
a, b = parse(sys.argv[1] + "/m0.txt"), parse(sys.argv[1] + "/m1.txt")
for (name, labels) in sorted(b):
    for base in ("genrec_request_seconds", "genrec_batch_size", "genrec_batch_seconds", "genrec_interaction_group_size"):
        if name == base + "_sum" and "/metrics" not in labels:
            n = b[(base + "_count", labels)] - a.get((base + "_count", labels), 0)
            total = b[(name, labels)] - a.get((name, labels), 0)
            if n:
                print(f"{base} {labels} n={n:.0f} mean={total / n:.4f}")
PY
cat $W/phases.txt
