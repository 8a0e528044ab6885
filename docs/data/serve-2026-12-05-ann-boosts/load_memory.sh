#!/bin/bash
# Peak memory of loading the 1,000,000-item Mult-VAE (2.0 GB of tensors, a 1.0 GB index):
# `genrec models index` (rebuilds the index) and `genrec serve` until /readyz answers
# (VmHWM of the server process), before (/tmp/before) and after (this tree).
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
for src in /tmp/before "$ROOT"; do
  side=$([ "$src" = "$ROOT" ] && echo after || echo before)
  peak=$(PYTHONPATH=$src GENREC_STORE_DIR=/tmp/s1m /usr/bin/time -v "$ROOT/.venv/bin/genrec" models index mult-vae@2 2>&1 \
    | awk '/Maximum resident/ {printf "%.1f GB", $6 / 1e6}')
  echo "$side: genrec models index mult-vae@2: peak RSS $peak"
  rm -f /tmp/loadmem.db
  PYTHONPATH=$src GENREC_STORE_DIR=/tmp/s1m GENREC_ANN=on GENREC_DATABASE_URL=sqlite:////tmp/loadmem.db \
    "$ROOT/.venv/bin/genrec" serve --port 8812 >/dev/null 2>&1 &
  for _ in $(seq 1 120); do curl -sf localhost:8812/readyz >/dev/null && break; sleep 1; done
  pid=$(pgrep -f "genrec serve --port 8812" | head -1)
  echo "$side: genrec serve, ready: $(awk '/VmHWM|VmRSS/ {printf "%s %.1f GB  ", $1, $2 / 1e6}' /proc/$pid/status)"
  pkill -f "genrec serve --port 8812"; sleep 2
done
