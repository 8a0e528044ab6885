#!/bin/bash
# Each kind of the mix sent alone (WRK_MIX=100:<kind>), then the mix, to one server on
# Postgres + Redis: server CPU per request by thread (cpu_per_request.sh), this tree.
# Shows what the mix costs beyond the sum of its parts.
cd "$(dirname "$0")/../../../.."  # the repository root
PG=postgresql+psycopg://postgres@127.0.0.1:5432/genrec_kinds
for kind in recs mix-write mix-new-recs mix-adhoc predict mix; do
  psql -q -U postgres -h 127.0.0.1 -c "drop database if exists genrec_kinds" -c "create database genrec_kinds" 2>/dev/null
  redis-cli -n 11 flushdb >/dev/null
  if [ $kind = mix ]; then unset WRK_MIX; else export WRK_MIX="100:$kind"; fi
  DBURL=$PG REDIS=redis://127.0.0.1:6379/11 bash docs/data/serve-2026-12-03-mixcost/cpu_per_request.sh mix 2>&1 \
    | sed "s/^== mix:/== $kind:/"
done > docs/data/serve-2026-12-04-cache/kinds/cpu_per_request.txt
