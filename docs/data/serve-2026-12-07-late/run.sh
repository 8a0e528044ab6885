#!/bin/bash
# The 12-07 afternoon's request-path additions (body timeout, body encoding check, /admin
# no-store, allowed-hosts middleware off by default) before (1eb9ee1) and after (31b94f5):
# recs and the mix (wrk, 32 connections, median of 3), one server each, nothing else running
# (14:55-15:01). /tmp/bench-store: mult-vae and biased-mf trained as in
# docs/data/serve-2026-12-07-pm/run.sh.
#   git worktree add --detach /tmp/before 1eb9ee1
#   BEFORE=/tmp/before bash docs/data/serve-2026-12-07-late/run.sh pg  > docs/data/serve-2026-12-07-late/ab.txt
#   BEFORE=/tmp/before bash docs/data/serve-2026-12-07-late/run.sh emb > docs/data/serve-2026-12-07-late/emb.txt
cd "$(dirname "$0")/../../.."  # the repository root
if [ "${1:-pg}" = pg ]; then
  BEFORE=${BEFORE:-/tmp/before} bash docs/data/serve-2026-12-07-ab/run.sh  # two interleaved rounds
else
  for src in "${BEFORE:-/tmp/before}" "$PWD"; do  # one round
    bash docs/data/serve-2026-12-06-predict-batch/workers.sh emb 1 "$src"
  done
fi
