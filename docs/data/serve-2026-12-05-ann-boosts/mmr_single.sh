#!/bin/bash
# One MMR list at a time (curl), 1,000,000-item indexed catalog: before (/tmp/before) and
# after (this tree). Under wrk at 32 connections no MMR list finished within wrk's 10 s
# timeout before (run.txt), so this gives the before side's per-request time.
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
for src in /tmp/before "$ROOT"; do
  rm -f /tmp/mmrcheck.db
  PYTHONPATH=$src GENREC_STORE_DIR=/tmp/s1m GENREC_ANN=on GENREC_DATABASE_URL=sqlite:////tmp/mmrcheck.db \
    "$ROOT/.venv/bin/genrec" serve --port 8811 >/dev/null 2>&1 &
  for _ in $(seq 1 90); do curl -sf localhost:8811/readyz >/dev/null && break; sleep 2; done
  echo "== $([ "$src" = "$ROOT" ] && echo after || echo before)"
  for u in 1 2 3 4 5; do
    curl -s -o /dev/null -w "mmr=0.7 user $u: %{http_code} %{time_total}s\n" "localhost:8811/v1/users/$u/recommendations?k=10&mmr=0.7"
  done
  curl -s -o /dev/null -w "no rules user 1: %{http_code} %{time_total}s\n" "localhost:8811/v1/users/1/recommendations?k=10"
  pkill -f "genrec serve --port 8811"; sleep 2
done
