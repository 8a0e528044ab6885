#!/bin/bash
# Which thread holds the GIL, doing what, per request: py-spy --gil (samples only the thread
# holding the GIL) on one Postgres + Redis server under wrk at 32 connections, known-user
# recs and then the mix, 8 s each at 200 Hz; then gil_profile.py prints ms of GIL per request
# by thread and, for the threads named, by function (inclusive).
#   bash docs/data/serve-2026-12-06-redis-writes/gil_profile.sh [THREAD ...]
# Needs a serve_bench store in /tmp/bench-store and py-spy in /tmp/pyspy.
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD; W=/tmp/gilprof; rm -rf $W; mkdir -p $W
PORT=18736; db=genrec_gilprof_$$
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
redis-cli -n 13 flushdb >/dev/null
(exec env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true GENREC_REDIS_URL=redis://127.0.0.1:6379/13 \
  GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$db $ROOT/.venv/bin/python -m app.cli serve --workers 1 --port $PORT) > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
for kind in recs mix; do
  WRK="wrk -t 2 -c 32 -s $ROOT/benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind"
  $WRK -d 3s >/dev/null
  $WRK -d 10s > $W/wrk_$kind.txt & WP=$!
  sleep 1
  env PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy record -p $SP -d 8 -r 200 -t --gil -f raw -o $W/$kind.raw >/dev/null 2>&1
  wait $WP
done
kill $SP; wait $SP 2>/dev/null
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" 2>/dev/null
python3 "$(dirname "$0")/gil_profile.py" $W "${@:-MainThread score-mult-vae interaction-writer}"
