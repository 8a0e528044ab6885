#!/bin/bash
# run.sh, but the way the serve benchmark's mix cell finds the database: after 20 s of
# known users' recommendations (tens of thousands of impressions) and an ANALYZE (which
# autovacuum does within a minute); the counters are reset after the ANALYZE.
#   bash docs/data/serve-2026-12-04-planner/analysed.sh > docs/data/serve-2026-12-04-planner/analysed.txt
#   SIDES=mid ROUNDS=1 bash docs/data/serve-2026-12-04-planner/analysed.sh > docs/data/serve-2026-12-04-planner/analysed_a5738aa.txt
cd "$(dirname "$0")/../../.."  # the repository root
export PREP="wrk -t 2 -c 32 -d 20s -s $PWD/benchmarks/wrk/serve_bench.lua http://127.0.0.1:18734 -- recs >/dev/null; psql -q -U postgres -h 127.0.0.1 -d genrec_planner -c analyze -c 'select pg_stat_reset()' >/dev/null"
exec bash docs/data/serve-2026-12-04-planner/run.sh
