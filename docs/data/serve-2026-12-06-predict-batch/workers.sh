#!/bin/bash
# recs and the mix (wrk, 32 connections, median of 3) on one server: mode pg|emb, uvicorn workers.
#   bash docs/data/serve-2026-12-06-predict-batch/workers.sh pg 1; ... pg 2   (workers.txt, 28b2be5)
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
src=${3:-$PWD}
extra=""
if [ $1 = pg ]; then
  db=genrec_exp_$$
  psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
  redis-cli -n 10 flushdb >/dev/null
  extra="--database-url postgresql+psycopg://postgres@127.0.0.1:5432/$db --redis-url redis://127.0.0.1:6379/10"
fi
echo "== $1 workers=$2 src=$src ($(date +%H:%M:%S))"
PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/bench-store \
  --concurrency 32 --repeat 3 --load wrk --endpoints recs,mix --workers $2 $extra 2>/dev/null \
  | grep -E "constant|recs |mix |mix_vs"
