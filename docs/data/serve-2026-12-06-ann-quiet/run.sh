#!/bin/bash
# The 1M x 256 server with and without its index on a quiet host, and the index's threads
# (run.txt); where an indexed batch's time goes (ann_profile.txt); IVF-SQ8 / fp16 codes
# against IVF-flat on the same lists (index_types.txt). Needs /tmp/s1m:
#   build_store(Path('/tmp/s1m'), Path('../shared/data'), 1000000, 256, 'correlated', index=True)
cd "$(dirname "$0")/../../.."  # the repository root
D=docs/data/serve-2026-12-06-ann-quiet
export GENREC_DATA_DIR=../shared/data
bench() { .venv/bin/python benchmarks/serve_bench.py --store /tmp/s1m --endpoints constant,recs \
  --duration 8 --warmup 2 "$@" 2>&1 | grep -E "^\||ann_recall"; }
{
  echo "== $(date +%H:%M) load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "-- python load, GENREC_ANN=on";  bench --concurrency 1,32 --server-env GENREC_ANN=on
  echo "-- python load, GENREC_ANN=off"; bench --concurrency 1,32 --server-env GENREC_ANN=off
  for t in 1 2; do
    echo "-- wrk, GENREC_ANN=on, GENREC_TORCH_THREADS=$t (torch and FAISS threads)"
    bench --concurrency 32 --load wrk --server-env GENREC_ANN=on --server-env GENREC_TORCH_THREADS=$t
  done
} > $D/run.txt
PYTHONPATH=$PWD .venv/bin/python $D/ann_profile.py /tmp/s1m 10 > $D/ann_profile.txt 2>&1
PYTHONPATH=$PWD .venv/bin/python $D/index_types.py /tmp/s1m sq8,sqfp16 2>&1 | grep -v Warn > $D/index_types.txt
