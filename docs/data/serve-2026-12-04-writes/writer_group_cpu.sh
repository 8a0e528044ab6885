#!/bin/bash
# CPU of the interaction writer per one-request group, in process, Postgres + Redis:
# /tmp/before (a worktree of the commit before "writes leave the cache alone") against this
# tree, three interleaved rounds (docs/data/serve-2026-12-03-mixcost/writer_group_cpu.py).
cd "$(dirname "$0")/../../.."  # the repository root
PG=postgresql+psycopg://postgres@127.0.0.1:5432
for r in 1 2 3; do
  for src in /tmp/before $PWD; do
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_writer" -c "create database genrec_writer" 2>/dev/null
    redis-cli -n 13 flushdb >/dev/null
    echo "== $([ $src = $PWD ] && echo after || echo before) $r: $(WG_URL=$PG/genrec_writer WG_REDIS=redis://127.0.0.1:6379/13 \
      GENREC_STORE_DIR=/tmp/bench-store PYTHONPATH=$src .venv/bin/python docs/data/serve-2026-12-03-mixcost/writer_group_cpu.py 2>/dev/null)"
  done
done
