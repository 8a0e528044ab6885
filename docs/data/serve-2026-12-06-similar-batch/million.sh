#!/bin/bash
# Similar lists at 1,000,000 items x 256 before and after they joined the micro-batch:
# serve_bench's similar cell (wrk, 1 and 32 connections, median of 2) with the
# similar-items index (GENREC_ANN=on) and without (off: the exact cosine rows), embedded.
#   GENREC_DATA_DIR=../shared/data .venv/bin/python -c "from pathlib import Path; from benchmarks.serve_bench import build_store; build_store(Path('/tmp/s1m'), Path('../shared/data'), 1000000, 256, 'correlated')"
#   git worktree add /tmp/before <commit before>; bash docs/data/serve-2026-12-06-similar-batch/million.sh /tmp/before
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
before=$1
for ann in on off; do
  for src in $before $PWD; do
    echo "== GENREC_ANN=$ann src=$src ($(date +%H:%M:%S))"
    PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/s1m --concurrency 1,32 \
      --repeat 2 --load wrk --endpoints similar --server-env GENREC_ANN=$ann 2>/dev/null \
      | grep -E "endpoint|constant |similar "
  done
done
