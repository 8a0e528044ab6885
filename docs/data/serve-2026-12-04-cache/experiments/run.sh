#!/bin/bash
# Three things tried on the mix (Postgres + Redis, this tree, server CPU per request by thread):
# 64 connections instead of 32; the GIL's switch interval; the writer always waiting its window.
cd "$(dirname "$0")"
HERE=$PWD
CPR=$HERE/../../serve-2026-12-03-mixcost/cpu_per_request.sh
PG=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_exp
fresh() { psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_exp" -c "create database genrec_exp" 2>/dev/null; redis-cli -n 11 flushdb >/dev/null; }
run() { fresh; DBURL=$PG REDIS=redis://127.0.0.1:6379/11 bash $CPR "$@" 2>&1; }
for r in 1 2; do
  for c in 32 64; do echo "### $c connections, round $r"; CONNS=$c run recs mix; done
done > $HERE/connections.txt
for s in 0.005 0.001 0.02; do
  echo "### switch interval $s s"; SWITCH_S=$s SERVE=$HERE/serve_with.py run recs mix
done > $HERE/switch_interval.txt
for cfg in "0 2" "1 2" "1 5"; do
  set -- $cfg
  echo "### writer always waits: $1, window $2 ms"
  NO_LONE=$([ $1 = 1 ] && echo 1) GENREC_INTERACTION_COMMIT_WAIT_MS=$2 SERVE=$HERE/serve_with.py run mix
done > $HERE/writer_window.txt
