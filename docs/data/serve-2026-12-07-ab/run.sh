#!/bin/bash
# recs and the mix (wrk, 32 connections, median of 3), Postgres + Redis, before (b762340, a
# worktree at BEFORE) and after (this tree), two interleaved rounds; /tmp/bench-store holds
# mult-vae and biased-mf trained by `make run` (ML-100K).
#   git worktree add --detach /tmp/before b762340
#   BEFORE=/tmp/before bash docs/data/serve-2026-12-07-ab/run.sh > docs/data/serve-2026-12-07-ab/ab.txt
cd "$(dirname "$0")/../../.."  # the repository root
for round in 1 2; do
  for src in "${BEFORE:-/tmp/before}" "$PWD"; do
    bash docs/data/serve-2026-12-06-predict-batch/workers.sh pg 1 "$src"
  done
done
