#!/bin/bash
# issue #20 part 2 cells measured by wrk and by the Python client, embedded and Postgres+Redis.
set -e
cd /work/main
export GENREC_DATA_DIR=../shared/data PYTHONPATH=$PWD
S=/tmp/bench-store
OUT=/work/wrk-out; mkdir -p $OUT
B=".venv/bin/python benchmarks/serve_bench.py --store $S --concurrency 32 --repeat 3"
PARTS=recs,mix,predict,mix-write,mix-new-recs,mix-adhoc
for db in genrec_wrk_a genrec_wrk_b; do psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $db" -c "create database $db"; done
redis-cli -n 7 flushdb >/dev/null; redis-cli -n 8 flushdb >/dev/null
PG() { echo "--database-url postgresql+psycopg://postgres@127.0.0.1:5432/$1 --redis-url redis://127.0.0.1:6379/$2"; }
{ date; uptime; } > $OUT/wrk_embedded.txt
$B --load wrk --endpoints $PARTS >> $OUT/wrk_embedded.txt 2>$OUT/wrk_embedded.err; uptime >> $OUT/wrk_embedded.txt
{ date; uptime; } > $OUT/wrk_pg.txt
$B --load wrk --endpoints $PARTS $(PG genrec_wrk_a 7) >> $OUT/wrk_pg.txt 2>$OUT/wrk_pg.err; uptime >> $OUT/wrk_pg.txt
{ date; uptime; } > $OUT/py_embedded.txt
$B --load python --endpoints recs,mix >> $OUT/py_embedded.txt 2>$OUT/py_embedded.err; uptime >> $OUT/py_embedded.txt
{ date; uptime; } > $OUT/py_pg.txt
$B --load python --endpoints recs,mix $(PG genrec_wrk_b 8) >> $OUT/py_pg.txt 2>$OUT/py_pg.err; uptime >> $OUT/py_pg.txt
date >> $OUT/py_pg.txt
