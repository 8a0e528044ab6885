#!/bin/bash
# Similar lists before and after they joined the micro-batch: the serve benchmark's
# `similar` cell (wrk, median of 3) at 1, 8, 32 and 128 connections, known-user lists
# beside it as a control, on one server per tree and mode; the two trees interleaved.
#   git worktree add /tmp/before <commit before>; bash docs/data/serve-2026-12-06-similar/ab.sh pg|emb /tmp/before
# Needs a serve_bench store in /tmp/bench-store.
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
mode=$1; before=$2
for src in $before $PWD; do
  extra=""
  if [ $mode = pg ]; then
    db=genrec_sim_$$
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db" 2>/dev/null
    redis-cli -n 10 flushdb >/dev/null
    extra="--database-url postgresql+psycopg://postgres@127.0.0.1:5432/$db --redis-url redis://127.0.0.1:6379/10"
  fi
  echo "== $mode src=$src ($(date +%H:%M:%S))"
  PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/bench-store \
    --concurrency 1,8,32,128 --repeat 3 --load wrk --endpoints similar,recs $extra 2>/dev/null \
    | grep -E "endpoint|constant |similar |recs "
done
