#!/bin/bash
# issue #20 part 2: the mix's per-request CPU cut (Core writes, prebuilt attribution
# statements, ids, access log queue; after) against ae39119 (before, a worktree at
# /tmp/before), recs and mix only: the ad-hoc run's script with these settings.
cd "$(dirname "$0")"
BEFORE=${BEFORE:-ae39119} PARTS=${PARTS:-recs,mix} OUT=${OUT:-/work/wrk-mixcost} DB=${DB:-genrec_mixcost} \
  exec bash ../serve-2026-12-03-adhoc/run.sh
