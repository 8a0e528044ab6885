#!/bin/bash
# Similar-items lists at 1,000,000 items x 256 (serve_bench's similar cell, wrk, 1 and 32
# connections, median of 2; recs as the control), GENREC_ANN=on, before (28b2be5: exact
# cosine rows, a worktree at /tmp/before, served from the store as it was before
# `genrec models index` added the similar-items index) and after (this tree, the store
# re-indexed). The after run also prints similar_recall@100 over 1,043 items and
# ann_recall@100 over 1,043 users against an exact server. Before, 32 connections are
# not measured: the server was OOM-killed at 20-24 GB (every concurrent first similar
# request built its own 1 GB unit-length table; dmesg lines in oom_before.txt).
#   cp -r /tmp/s1m /tmp/s1m-before-similar    # before re-indexing (the 1M store: docs/performance.md)
#   GENREC_STORE_DIR=/tmp/s1m /usr/bin/time -v .venv/bin/genrec models index mult-vae@2   # index_1m_256.txt
#   bash docs/data/serve-2026-12-06-similar/run.sh > docs/data/serve-2026-12-06-similar/run.txt
cd "$(dirname "$0")/../../.."  # the repository root
[ -d /tmp/before ] || git worktree add -f /tmp/before 28b2be5 >/dev/null
export GENREC_DATA_DIR=../shared/data
bench() {  # side store recall-users connections
  local src=$([ $1 = before ] && echo /tmp/before || echo $PWD)
  echo "== $1 ($(date +%H:%M))"
  PYTHONPATH=$src .venv/bin/python benchmarks/serve_bench.py --store $2 --concurrency $4 \
    --repeat 2 --load wrk --endpoints similar,recs --server-env GENREC_ANN=on \
    --recall-users $3 2>/dev/null | grep -E "^\| (constant|recs|similar)|recall|ann server"
}
bench before /tmp/s1m-before-similar 50 1
bench after /tmp/s1m 1043 1,32
