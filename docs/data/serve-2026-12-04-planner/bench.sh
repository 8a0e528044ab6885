#!/bin/bash
# The serve benchmark's wrk cells (bare, recs, mix; 32 connections, median of 3), the code
# before (56ada05, a worktree at /tmp/before) and after the LATERAL statements, interleaved:
# Postgres + Redis twice (before first, then after first), embedded once (its window
# statement changed too: row_number() for the per-user limit).
#   bash docs/data/serve-2026-12-04-planner/bench.sh > docs/data/serve-2026-12-04-planner/bench.txt
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
[ -d /tmp/before ] || git worktree add -f /tmp/before 56ada05 >/dev/null
run() {  # side mode
  local src=$([ $1 = before ] && echo /tmp/before || echo $PWD) extra=""
  if [ $2 = pg ]; then
    local db=genrec_planner_$1
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
    redis-cli -n 10 flushdb >/dev/null
    extra="--database-url postgresql+psycopg://postgres@127.0.0.1:5432/$db --redis-url redis://127.0.0.1:6379/10"
  fi
  echo "== $2, $1 ($(date +%H:%M))"
  PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/bench-store \
    --concurrency 32 --repeat 3 --load wrk --endpoints recs,mix $extra 2>/dev/null \
    | grep -E "constant|recs |mix |mix_vs"
}
run before pg; run after pg
run after pg; run before pg
run before embedded; run after embedded
