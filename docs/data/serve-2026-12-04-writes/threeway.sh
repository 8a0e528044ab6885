#!/bin/bash
# In-process CPU per request (mix_cpu.py), Postgres + Redis, three sides interleaved:
# 662af3f (worktree /tmp/before), f35d71c "writes leave the cache alone" (/tmp/writes), and
# /tmp/foldin: f35d71c with foldin_experiment.patch applied (one fold-in call per batch; not
# adopted). ROUNDS rounds (default 3) of recs and mix each.
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD
[ -d /tmp/before ] || git worktree add -f /tmp/before 662af3f >/dev/null
[ -d /tmp/writes ] || git worktree add -f /tmp/writes f35d71c >/dev/null
if [ ! -d /tmp/foldin ]; then git worktree add -f /tmp/foldin f35d71c >/dev/null; git -C /tmp/foldin apply $ROOT/docs/data/serve-2026-12-04-writes/foldin_experiment.patch; fi
for r in $(seq ${ROUNDS:-3}); do
  for kind in recs mix; do
    for src in /tmp/before /tmp/writes /tmp/foldin; do
      psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_foldin" -c "create database genrec_foldin" 2>/dev/null
      redis-cli -n 13 flushdb >/dev/null
      echo "$(git -C $src log --oneline -1 | cut -c1-7)$([ $src = /tmp/foldin ] && echo '+foldin') round $r $( \
        cd $src && GENREC_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_foldin \
        GENREC_REDIS_URL=redis://127.0.0.1:6379/13 PYTHONPATH=$src $ROOT/.venv/bin/python \
        $ROOT/docs/data/serve-2026-12-04-writes/mix_cpu.py /tmp/bench-store $kind 2>/dev/null)"
    done
  done
done
