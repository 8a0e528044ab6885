#!/bin/bash
# The 50,000-item figures of docs/performance.md ("The retrieval index's breadth, measured
# at build time"). Run from the repository root on 2026-12-07 01:50-02:18 UTC, a 2-core
# machine shared with other sessions' test suites (load average 3.5-11): run.txt,
# run_nprobe16.txt; the servers' app.serving.retrieval log lines: server_log_lines.txt;
# the two versions' retrieval sections: calibration.json.
set -e
export PYTHONPATH=$PWD GENREC_DATA_DIR=${GENREC_DATA_DIR:-../shared/data}
PY=.venv/bin/python
B=/tmp/ann-bench
# Mult-VAE (256 wide) and biased-MF trained on ML-100K, 10 epochs: the base both catalogs widen.
$PY benchmarks/serve_bench.py --store $B/base --dims 256 --endpoints constant --concurrency 1 \
    --duration 1 --warmup 0.5
for catalog in iid correlated; do
  # Widens a copy to 50,000 items and builds its indexes as `genrec models index` does
  # (the retrieval index calibrated on 200 sampled ML-100K users); auto from 50,000 items.
  $PY benchmarks/serve_bench.py --store $B/$catalog-50k --base-store $B/base --items 50000 \
      --catalog $catalog --endpoints constant,recs --concurrency 1,32 --duration 4 --warmup 1 \
      --server-env GENREC_ANN=auto --server-env GENREC_ANN_AUTO_ITEMS=50000 \
      --server-log-dir $B/$catalog-auto-logs
  $PY benchmarks/serve_bench.py --store $B/$catalog-50k --endpoints constant,recs \
      --concurrency 1,32 --duration 4 --warmup 1 --server-env GENREC_ANN=on \
      --server-log-dir $B/$catalog-on-logs
done
# The breadth every version had before calibration, forced on the iid catalog (run_nprobe16.txt).
$PY benchmarks/serve_bench.py --store $B/iid-50k --endpoints constant,recs --concurrency 1,32 \
    --duration 4 --warmup 1 --server-env GENREC_ANN=on --server-env GENREC_ANN_NPROBE=16
