#!/bin/bash
# Postgres + Redis only, the pair again in the other order (after first), twice:
# the serve benchmark's wrk cells, median of 3 (final/run.sh ran before then after).
cd "$(dirname "$0")/../../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
[ -d /tmp/before ] || git worktree add -f /tmp/before 95ed6f1 >/dev/null
for r in 1 2; do
  for side in after before; do
    src=$([ $side = before ] && echo /tmp/before || echo $PWD)
    db=genrec_final_again_$side
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
    redis-cli -n 10 flushdb >/dev/null
    echo "== $side, round $r"
    PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/bench-store \
      --concurrency 32 --repeat 3 --load wrk --endpoints recs,mix \
      --database-url postgresql+psycopg://postgres@127.0.0.1:5432/$db \
      --redis-url redis://127.0.0.1:6379/10 2>/dev/null | grep -E "constant|recs |mix |mix_vs"
  done
done
