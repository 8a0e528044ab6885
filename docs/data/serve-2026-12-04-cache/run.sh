#!/bin/bash
# issue #20 part 2, 2026-12-04 (evening): the read engine of its own (756891e) and the memory
# tier in front of Redis with batched state writes (4802725), against 95ed6f1 (before, a
# worktree at /tmp/before): the serve benchmark's wrk cells (recs, mix; embedded and
# Postgres+Redis; median of 3), then a request scored alone in process, interleaved.
cd "$(dirname "$0")"
HERE=$PWD
BEFORE=${BEFORE:-95ed6f1} PARTS=recs,mix OUT=${OUT:-/work/wrk-cache} DB=${DB:-genrec_cache} \
  bash ../serve-2026-12-03-adhoc/run.sh
cp ${OUT:-/work/wrk-cache}/*.txt $HERE/
cd ../../..  # the repository root
DB=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_single
for r in 1 2 3; do
  for side in before after; do
    src=$([ $side = before ] && echo /tmp/before || echo $PWD)
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_single" -c "create database genrec_single"
    redis-cli -n 14 flushdb >/dev/null
    echo "== $side, round $r (Postgres + Redis)"
    GENREC_DATABASE_URL=$DB GENREC_REDIS_URL=redis://127.0.0.1:6379/14 PYTHONPATH=$src \
      .venv/bin/python docs/data/serve-2026-12-04-body/mix-parts/single_call.py 2>/dev/null
  done
done > $HERE/single_call_pg.txt
