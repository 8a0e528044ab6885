#!/bin/bash
# The mix on Postgres + Redis, the code before (SRC=/tmp/before: `git worktree add -f
# /tmp/before 56ada05`) and after the per-user LATERAL statements, interleaved: server and
# Postgres CPU per request (cpu_per_request.sh), then what Postgres read for it (its
# cumulative table and index counters over the warm-up and the run, from a fresh database;
# with PREP, cpu_per_request.sh runs it before the warm-up: analysed.sh).
#   bash docs/data/serve-2026-12-04-planner/run.sh > docs/data/serve-2026-12-04-planner/mix.txt
# SIDES="mid" ROUNDS=1 runs /tmp/mid (`git worktree add -f /tmp/mid a5738aa`: the LATERAL
# statements without the read engine's setting) instead (analysed_a5738aa.txt).
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD
DB=genrec_planner
for round in $(seq ${ROUNDS:-2}); do
  for side in ${SIDES:-before after}; do
    case $side in before) src=/tmp/before ;; mid) src=/tmp/mid ;; *) src=$ROOT ;; esac
    psql -q -U postgres -h 127.0.0.1 -c "drop database if exists $DB" -c "create database $DB" 2>/dev/null
    redis-cli -n 11 flushdb >/dev/null
    echo "### round $round, $side ($(cd $src && git rev-parse --short HEAD)$( [ -n "$(cd $src && git status --porcelain app)" ] && echo +changes))"
    SRC=$src DBURL=postgresql+psycopg://postgres@127.0.0.1:5432/$DB REDIS=redis://127.0.0.1:6379/11 \
      bash docs/data/serve-2026-12-03-mixcost/cpu_per_request.sh mix 2>&1
    sleep 1  # the statistics collector's last report
    psql -U postgres -h 127.0.0.1 -d $DB -c "select relname as table, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch, n_live_tup from pg_stat_user_tables where relname in ('interactions', 'impressions') order by 1" \
      -c "select indexrelname as index, idx_scan, idx_tup_read from pg_stat_user_indexes where relname in ('interactions', 'impressions') and idx_scan > 0 order by 1"
  done
done
