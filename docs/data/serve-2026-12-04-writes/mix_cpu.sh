#!/bin/bash
# In-process CPU per request (mix_cpu.py: no HTTP, no wrk on the cores), Postgres + Redis,
# known-user lists and the mix: /tmp/before (a worktree of 662af3f, the commit before
# "writes leave the cache alone") against this tree, in ABBA order twice.
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD
[ -d /tmp/before ] || git worktree add -f /tmp/before 662af3f >/dev/null
for kind in recs mix; do
  for src in /tmp/before $ROOT $ROOT /tmp/before /tmp/before $ROOT $ROOT /tmp/before; do
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_mixcpu" -c "create database genrec_mixcpu" 2>/dev/null
    redis-cli -n 13 flushdb >/dev/null
    echo "$([ $src = $ROOT ] && echo after || echo before) $( \
      cd $src && GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_mixcpu \
      GENREC_REDIS_URL=redis://127.0.0.1:6379/13 PYTHONPATH=$src $ROOT/.venv/bin/python \
      $ROOT/docs/data/serve-2026-12-04-writes/mix_cpu.py /tmp/bench-store $kind 2>/dev/null)"
  done
done
