#!/bin/bash
# Lists with rules on a 1,000,000-item indexed catalog, before (/tmp/before: a worktree of
# 2680f4d, where a boost or a diversity rule sent the list to exact scoring) and after
# (this tree); wrk, 32 connections, rules off and on alternating on one server
# (serve_bench --rules-ab). The store, built once:
#   GENREC_DATA_DIR=../shared/data .venv/bin/python -c "from pathlib import Path; \
#     from benchmarks.serve_bench import build_store; \
#     build_store(Path('/tmp/s1m'), Path('../shared/data'), 1000000, 256, 'correlated', index=True)"
# The widened catalog's synthetic items have no attributes, so the rules are ones they do
# not all fail: a boost of recent films, the same with a cap per genre, MMR.
cd "$(dirname "$0")/../../.."  # the repository root
QUERIES=${QUERIES:-"boost=year%3E%3D1995%5E0.5 boost=year%3E%3D1995%5E0.5&cap=genres%3A2 mmr=0.7"}
for q in $QUERIES; do
  for src in ${ORDER:-/tmp/before $PWD}; do
    echo "== $q: $([ "$src" = "$PWD" ] && echo after || echo before) ($(date +%H:%M))"
    PYTHONPATH=$src GENREC_DATA_DIR=../shared/data .venv/bin/python benchmarks/serve_bench.py \
      --store /tmp/s1m --rules-ab --rules-query "$q" --concurrency 32 --duration 8 --warmup 2 \
      --repeat 1 --load wrk --server-env GENREC_ANN=on 2>/dev/null
  done
done
