#!/bin/bash
# The mix with one kind left out at a time (its share given to known-user recs), server CPU
# per request by thread, twice: which kind costs the mix most (2026-12-04, 17:57-18:00).
# benchmarks/wrk/serve_bench.lua reads the mix from WRK_MIX (at the time of the run, a copy
# of it that read the same variable under the name MIX did).
cd "$(dirname "$0")"
declare -A V=(
  [A-full]="60:recs,15:mix-write,10:mix-new-recs,10:mix-adhoc,5:predict"
  [B-no-newrecs]="70:recs,15:mix-write,10:mix-adhoc,5:predict"
  [C-no-writes]="75:recs,10:mix-new-recs,10:mix-adhoc,5:predict"
  [D-no-predict]="65:recs,15:mix-write,10:mix-new-recs,10:mix-adhoc"
  [E-no-adhoc]="70:recs,15:mix-write,10:mix-new-recs,5:predict"
  [F-recs-only]="100:recs"
)
for r in 1 2; do
  for v in A-full B-no-newrecs C-no-writes D-no-predict E-no-adhoc F-recs-only; do
    echo "## $v r$r"
    WRK_MIX="${V[$v]}" bash ../../serve-2026-12-03-mixcost/cpu_per_request.sh mix 2>&1 | head -8
  done
done > results.txt
