#!/bin/bash
# py-spy of the embedded server under the mix (wrk, 32 conn), per-thread busy shares.
cd /work/main
W=/tmp/prof; rm -rf $W; mkdir -p $W
PORT=18731
env -u GENREC_DATA_DIR GENREC_STORE_DIR=/tmp/bench-store GENREC_BENCH_ENDPOINTS=true GENREC_DATABASE_URL=sqlite:///$W/genrec.db \
  .venv/bin/genrec serve --port $PORT --workers 1 > $W/server.log 2>&1 &
SP=$!
for i in $(seq 100); do curl -sf localhost:$PORT/readyz >/dev/null && break; sleep 0.3; done
for kind in mix; do
  wrk -t 2 -c 32 -d 3s -s benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind >/dev/null
  (wrk -t 2 -c 32 -d 12s -s benchmarks/wrk/serve_bench.lua http://127.0.0.1:$PORT -- $kind > $W/wrk_$kind.txt) &
  sleep 3
  PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy record -p $SP -d 6 -r 200 --idle -t -f raw -o $W/$kind.raw >/dev/null 2>&1
  PYTHONPATH=/tmp/pyspy /tmp/pyspy/bin/py-spy record -p $SP -d 6 -r 200 --gil -t -f raw -o $W/${kind}_gil.raw >/dev/null 2>&1 || true
  wait
done
kill $SP
