#!/bin/bash
# POST /v1/interactions (the mix's writes: two rows for a new user) against one Postgres +
# Redis server, from outside with wrk, at 1 and 32 connections (10 s after 2 s of warm-up):
# Postgres on loopback and through delay_proxy.py (every statement a round trip away:
# reads, writes and pings alike), before (/tmp/before) and after (this tree), interleaved.
#   bash docs/data/serve-2026-12-06-writer/serve_writes.sh
# Needs a serve_bench store in /tmp/bench-store.
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD; HERE=docs/data/serve-2026-12-06-writer
DELAY_MS=1 .venv/bin/python $HERE/delay_proxy.py 6543 5432 & PROXY=$!
trap 'kill $PROXY' EXIT
sleep 1
PORT=18736
for r in 1 2; do
  for pgport in 5432 6543; do
    for src in /tmp/before $ROOT; do
      db=genrec_sw_$$
      psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
      redis-cli -n 12 flushdb >/dev/null
      (cd $src && exec env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true \
        GENREC_REDIS_URL=redis://127.0.0.1:6379/12 GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$pgport/$db \
        PYTHONPATH=$src $ROOT/.venv/bin/python -m app.cli serve --workers 1 --port $PORT) > /tmp/sw_server.log 2>&1 &
      SP=$!
      for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
      for c in 1 32; do
        WRK="wrk -t $([ $c = 1 ] && echo 1 || echo 2) -c $c --latency -s $ROOT/benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- mix-write"
        $WRK -d 2s >/dev/null
        out=$($WRK -d 10s)
        echo "round $r, postgres $([ $pgport = 5432 ] && echo 'on loopback' || echo 'through the proxy'), $([ $src = $ROOT ] && echo after || echo before), $c conn: $(echo "$out" | awk '/Requests\/sec/{rps=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} /Non-2xx/{bad=$NF} END{printf "%s req/s, p50 %s, p99 %s, non-2xx %s", rps, p50, p99, bad+0}')"
      done
      kill $SP; wait $SP 2>/dev/null
      psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" 2>/dev/null
    done
  done
done
