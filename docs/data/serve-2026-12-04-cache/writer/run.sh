#!/bin/bash
# The interaction writer on a Connection (this tree) against ff1c082 (a Session; a worktree at
# /tmp/before2): CPU of a one-request group in process, and server CPU per request under wrk
# (writes alone, the mix), Postgres + Redis, interleaved twice.
cd "$(dirname "$0")/../../../.."  # the repository root
[ -d /tmp/before2 ] || git worktree add -f /tmp/before2 ff1c082 >/dev/null
HERE=docs/data/serve-2026-12-04-cache/writer
PG=postgresql+psycopg://postgres@127.0.0.1:5432
fresh() { psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $1" -c "create database $1"; redis-cli -n $2 flushdb >/dev/null; }
for r in 1 2; do
  for side in before after; do
    src=$([ $side = before ] && echo /tmp/before2 || echo $PWD)
    fresh genrec_writer 13
    echo "== $side $r: $(WG_URL=$PG/genrec_writer WG_REDIS=redis://127.0.0.1:6379/13 GENREC_STORE_DIR=/tmp/bench-store \
      PYTHONPATH=$src .venv/bin/python docs/data/serve-2026-12-03-mixcost/writer_group_cpu.py 2>/dev/null)"
  done
done > $HERE/writer_group_cpu.txt
for r in 1 2; do
  for side in before after; do
    src=$([ $side = before ] && echo /tmp/before2 || echo $PWD)
    fresh genrec_writer_wrk 11
    echo "### $side $r"
    SRC=$src DBURL=$PG/genrec_writer_wrk REDIS=redis://127.0.0.1:6379/11 \
      bash docs/data/serve-2026-12-03-mixcost/cpu_per_request.sh mix-write mix
  done
done > $HERE/cpu_per_request.txt 2>&1
