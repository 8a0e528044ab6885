#!/bin/bash
# Boosted recommendations on a 1,000,000-item indexed catalog, before (/tmp/before: a
# worktree of 2680f4d, where a boost sent the list to exact scoring) and after (this tree),
# alternating; wrk, 32 connections. The store: see README in this folder.
cd "$(dirname "$0")/../../.."  # the repository root
Q='boost=year%3E%3D1995%5E0.5'  # a boost alone: the widened catalog's synthetic items have no attributes
for src in ${ORDER:-/tmp/before $PWD}; do
  echo "== $([ "$src" = "$PWD" ] && echo after || echo before) ($(date +%H:%M))"
  PYTHONPATH=$src GENREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/serve_bench.py \
    --store /tmp/s1m --rules-ab --rules-query "$Q" --concurrency 32 --duration 8 --warmup 2 \
    --repeat 1 --load wrk --server-env GENREC_ANN=on 2>/dev/null
done
