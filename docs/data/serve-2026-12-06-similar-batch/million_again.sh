#!/bin/bash
# million.sh's indexed cell again, 32 connections only, before and after interleaved twice.
#   bash docs/data/serve-2026-12-06-similar-batch/million_again.sh /tmp/before
cd "$(dirname "$0")/../../.."  # the repository root
export GENREC_DATA_DIR=../shared/data
for round in 1 2; do
  for src in $1 $PWD; do
    echo "== round $round GENREC_ANN=on src=$src ($(date +%H:%M:%S))"
    PYTHONPATH=$src .venv/bin/python $src/benchmarks/serve_bench.py --store /tmp/s1m --concurrency 32 \
      --repeat 2 --load wrk --endpoints similar --server-env GENREC_ANN=on 2>/dev/null \
      | grep -E "constant |similar "
  done
done
