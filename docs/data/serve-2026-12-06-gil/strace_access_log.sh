#!/bin/bash
# System calls of the access-log thread (found by its name with py-spy) over 5 s of wrk load
# on one Postgres + Redis server (tracing slows the thread: counts per drain, not rates).
#   bash docs/data/serve-2026-12-06-gil/strace_access_log.sh recs   (strace_access_log.txt)
# Needs strace (apt-get install strace), wrk, py-spy in /tmp/pyspy and a serve_bench store in /tmp/bench-store.
cd "$(dirname "$0")/../../.."  # the repository root
PORT=18737; db=genrec_st_$$
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
redis-cli -n 12 flushdb >/dev/null
(exec env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true GENREC_REDIS_URL=redis://127.0.0.1:6379/12 \
  GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/$db PYTHONPATH=$PWD .venv/bin/python \
  -m app.cli serve --workers 1 --port $PORT) > /tmp/st_server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
WRK="wrk -t 2 -c 32 -s benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- ${1:-recs}"
$WRK -d 2s >/dev/null
TID=$(env PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy dump -p $SP 2>/dev/null | sed -n "s/^Thread \([0-9]*\) ([^)]*): \"access-log\"$/\1/p")
echo "access-log tid=$TID"
$WRK -d 8s > /tmp/st_wrk.txt & WP=$!
sleep 1
timeout 5 strace -c -p $TID 2>&1 | head -20
wait $WP
grep Requests/sec /tmp/st_wrk.txt
kill $SP; wait $SP 2>/dev/null
psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" 2>/dev/null
