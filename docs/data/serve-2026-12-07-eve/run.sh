#!/bin/bash
# recs and the mix (wrk, 32 connections, median of 3), before (cac65ca, a worktree at BEFORE)
# and after (this tree): Postgres + Redis two interleaved rounds, embedded one; /tmp/bench-store
# holds mult-vae and biased-mf trained by `make run` (ML-100K).
#   git worktree add --detach /tmp/before cac65ca
#   BEFORE=/tmp/before bash docs/data/serve-2026-12-07-eve/run.sh > docs/data/serve-2026-12-07-eve/ab.txt
cd "$(dirname "$0")/../../.."  # the repository root
for mode in pg pg emb; do
  for src in "${BEFORE:-/tmp/before}" "$PWD"; do
    bash docs/data/serve-2026-12-06-predict-batch/workers.sh $mode 1 "$src"
  done
done
