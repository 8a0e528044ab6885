#!/bin/bash
# issue #20 part 2: ad-hoc histories folded in by the micro-batch (after) against the
# commit before it (before, a worktree at /tmp/before), measured by wrk, embedded and
# Postgres+Redis, interleaved: before then after per mode, same store.
# BEFORE, PARTS, OUT and DB (the databases' name prefix) may be set from outside.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
S=/tmp/bench-store
OUT=${OUT:-/work/wrk-adhoc}; mkdir -p $OUT
BEFORE=${BEFORE:-2ac3930}
[ -d /tmp/before ] || git worktree add -f /tmp/before $BEFORE >/dev/null
PARTS=${PARTS:-recs,mix,mix-adhoc,predict,mix-write,mix-new-recs}
B() { PYTHONPATH=$1 .venv/bin/python $1/benchmarks/serve_bench.py --store $S --concurrency 32 --repeat 3 --load wrk "${@:2}"; }
PG() { echo "--database-url postgresql+psycopg://postgres@127.0.0.1:5432/$1 --redis-url redis://127.0.0.1:6379/$2"; }
fresh() { psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $1" -c "create database $1"; redis-cli -n $2 flushdb >/dev/null; }
for mode in embedded pg; do
  for side in before after; do
    src=$([ $side = before ] && echo /tmp/before || echo $PWD)
    extra=""
    if [ $mode = pg ]; then fresh ${DB:-genrec_adhoc}_$side $([ $side = before ] && echo 9 || echo 10); extra=$(PG ${DB:-genrec_adhoc}_$side $([ $side = before ] && echo 9 || echo 10)); fi
    f=$OUT/${mode}_${side}.txt
    { date; uptime; } > $f
    B $src --endpoints $PARTS $extra >> $f 2>$OUT/${mode}_${side}.err
    uptime >> $f
  done
done
date >> $OUT/pg_after.txt
