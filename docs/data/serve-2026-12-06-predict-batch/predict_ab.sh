#!/bin/bash
# The serve benchmark's predictions cell (wrk, 32 and 128 connections, median of 2,
# embedded), before (28b2be5, a worktree at /tmp/before) and after, interleaved twice.
#   bash docs/data/serve-2026-12-06-predict-batch/predict_ab.sh > docs/data/serve-2026-12-06-predict-batch/predict_ab.txt
# and the per-batch CPU (predict_batch_cost.txt), each side from its own checkout:
#   for s in /tmp/before $PWD; do (cd $s && PYTHONPATH=$s /work/main/.venv/bin/python \
#     /work/main/docs/data/serve-2026-12-06-predict-batch/batch_cost.py biased-mf); done
cd "$(dirname "$0")/../../.."  # the repository root
[ -d /tmp/before ] || git worktree add -f /tmp/before 28b2be5 >/dev/null
export GENREC_DATA_DIR=../shared/data
for round in 1 2; do
for side in before after; do
  src=$([ $side = before ] && echo /tmp/before || echo $PWD)
  echo "== $side round $round ($(date +%H:%M:%S))"
  PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/bench-store \
    --concurrency 32,128 --repeat 2 --load wrk --endpoints predict 2>/dev/null | grep -E "^\| (constant|predict)"
done; done
