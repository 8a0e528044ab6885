#!/bin/bash
# Peak memory of loading the 1,000,000-item Mult-VAE (2.0 GB of tensors, a 1.0 GB index):
# `genrec models index` (rebuilds the index; peak RSS) and `genrec serve` until /readyz
# answers (VmHWM, which counts the page cache a mapped file brings in, and the largest
# RssAnon sampled every 20 ms: the memory the process itself allocated), before
# (SRC_BEFORE, default /tmp/before) and after (this tree).
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
for src in ${SRC_BEFORE:-/tmp/before} "$ROOT"; do
  side=$([ "$src" = "$ROOT" ] && echo after || echo "before ($src)")
  peak=$(PYTHONPATH=$src GENREC_STORE_DIR=/tmp/s1m /usr/bin/time -v "$ROOT/.venv/bin/genrec" models index mult-vae@2 2>&1 \
    | awk '/Maximum resident/ {printf "%.1f GB", $6 / 1e6}')
  echo "$side: genrec models index mult-vae@2: peak RSS $peak"
  rm -f /tmp/loadmem.db
  PYTHONPATH=$src GENREC_STORE_DIR=/tmp/s1m GENREC_ANN=on GENREC_DATABASE_URL=sqlite:////tmp/loadmem.db \
    "$ROOT/.venv/bin/genrec" serve --port 8812 >/dev/null 2>&1 &
  sleep 0.5
  pid=$(pgrep -f "genrec serve --port 8812" | head -1)
  anon=0
  for _ in $(seq 1 6000); do
    now=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${now:-0}" -gt "$anon" ] && anon=$now
    curl -sf -m 0.2 localhost:8812/readyz >/dev/null && break
    sleep 0.02
  done
  echo "$side: genrec serve, ready: $(awk '/VmHWM|VmRSS/ {printf "%s %.1f GB  ", $1, $2 / 1e6}' /proc/$pid/status)largest RssAnon $(awk -v a=$anon 'BEGIN {printf "%.1f GB", a / 1e6}')"
  pkill -f "genrec serve --port 8812"; sleep 2
done
