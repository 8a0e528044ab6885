#!/bin/bash
# The read engine alone: 95ed6f1 (log reads through execution_options(AUTOCOMMIT) on the
# shared pool; worktree /tmp/before) against 756891e (a pool of their own in autocommit;
# worktree /tmp/readeng): a request scored alone, in process, Postgres + Redis, 3 rounds.
cd "$(dirname "$0")/../../../.."  # the repository root
[ -d /tmp/before ] || git worktree add -f /tmp/before 95ed6f1 >/dev/null
[ -d /tmp/readeng ] || git worktree add -f /tmp/readeng 756891e >/dev/null
DB=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_readeng
for r in 1 2 3; do
  for src in /tmp/before /tmp/readeng; do
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_readeng" -c "create database genrec_readeng" 2>/dev/null
    redis-cli -n 14 flushdb >/dev/null
    echo "== $(git -C $src log --oneline -1 | cut -c1-7), round $r"
    GENREC_DATABASE_URL=$DB GENREC_REDIS_URL=redis://127.0.0.1:6379/14 PYTHONPATH=$src \
      .venv/bin/python docs/data/serve-2026-12-04-body/mix-parts/single_call.py 2>/dev/null
  done
done
