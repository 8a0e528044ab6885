#!/bin/bash
# The interaction writer per one-request group, before (/tmp/before, a worktree of the
# commit before "the writer in autocommit, one INSERT") and after (this tree), with
# Postgres on loopback and through delay_proxy.py (DELAY_MS=1; the round trip it makes is
# printed first), three interleaved rounds.
cd "$(dirname "$0")/../../.."  # the repository root
HERE=docs/data/serve-2026-12-06-writer
DELAY_MS=1 .venv/bin/python $HERE/delay_proxy.py 6543 5432 & PROXY=$!
trap 'kill $PROXY' EXIT
sleep 1
# What a round trip costs each way (the proxy's timers round its DELAY_MS up).
PYTHONPATH=$PWD .venv/bin/python - <<'PY'
import time, psycopg
for port, name in ((5432, "loopback"), (6543, "through delay_proxy.py")):
    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as c:
        for _ in range(20):
            c.execute("SELECT 1").fetchall()
        t = time.perf_counter()
        for _ in range(200):
            c.execute("SELECT 1").fetchall()
        print(f"== a SELECT 1 round trip, {name}: {(time.perf_counter() - t) / 200 * 1e3:.2f} ms")
PY
for r in 1 2 3; do
  for port in 5432 6543; do
    for src in /tmp/before $PWD; do
      psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_writer" \
        -c "create database genrec_writer" -c "alter database genrec_writer set log_statement = 'all'" 2>/dev/null
      echo "== round $r, $([ $port = 5432 ] && echo loopback || echo 'through the proxy'), $([ $src = $PWD ] && echo after || echo before): $(
        WG_URL=postgresql+psycopg://postgres@127.0.0.1:$port/genrec_writer \
        GENREC_STORE_DIR=/tmp/bench-store PYTHONPATH=$src .venv/bin/python $HERE/writer_group.py 2>/dev/null)"
    done
  done
done
