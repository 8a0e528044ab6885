#!/bin/bash
# Server CPU per request by thread with the whole server on one core (taskset -c 1) and
# unpinned, interleaved: known-user recs, the mix, and recs with 15% of the mix's writes.
#   bash docs/data/serve-2026-12-06-gil/pin_ctx.sh   (pin_ctx.txt)
cd "$(dirname "$0")/../../.."  # the repository root
CTX=docs/data/serve-2026-12-06-threads/ctx_per_request.sh
for round in 1 2; do
  for prefix in "taskset -c 1" ""; do
    echo "### round $round, server ${prefix:-unpinned}"
    PREFIX="$prefix" bash $CTX recs mix
    WRK_MIX=85:recs,15:mix-write PREFIX="$prefix" bash $CTX mix | sed 's/== mix:/== 85:recs,15:mix-write:/'
  done
done
