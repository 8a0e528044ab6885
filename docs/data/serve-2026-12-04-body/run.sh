#!/bin/bash
# issue #20 part 2, 2026-12-04: POST bodies read by the routes (957598a) and the access log
# drained every 10 ms (560e960), against 0645284 (before, a worktree at /tmp/before):
# the serve benchmark's wrk cells (recs, mix; embedded and Postgres+Redis; median of 3),
# then the server CPU per request by thread, interleaved twice.
cd "$(dirname "$0")"
BEFORE=${BEFORE:-0645284} PARTS=recs,mix OUT=${OUT:-/work/wrk-body2} DB=${DB:-genrec_body2} \
  bash ../serve-2026-12-03-adhoc/run.sh
for r in 1 2; do
  SRC=/tmp/before bash ../serve-2026-12-03-mixcost/cpu_per_request.sh recs mix > cpu_per_request_before-$r.txt 2>&1
  bash ../serve-2026-12-03-mixcost/cpu_per_request.sh recs mix > cpu_per_request_after-$r.txt 2>&1
done
