#!/usr/bin/env bash
# Mult-VAE epoch time on the synthetic 100,000 x 20,000 matrix: 1 process x 1 thread,
# 2 processes x 1 thread (torchrun + DDP over Gloo), 1 process x 2 threads, in ROUNDS
# interleaved rounds, with the load average before each run (docs/performance.md,
# "Training on several processes", the quiet-host reading).
#   bash docs/data/train-2026-12-06-quiet/run.sh [ROUNDS] > docs/data/train-2026-12-06-quiet/epochs.txt
set -euo pipefail
ROUNDS=${1:-2}
B=(.venv/bin/python -m benchmarks.train_speed --workload synthetic --users 100000 --items 20000
   --clicks 7000000 --epochs 1 --warmup 0)
for round in $(seq 1 "$ROUNDS"); do
  for config in "--threads 1" "--threads 1 --nproc 2" "--threads 2"; do
    echo "== round $round: $config; $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2086
    /usr/bin/time -f "wall %e s, user %U s, sys %S s (all processes)" "${B[@]}" $config 2>&1 \
      | grep -v -i 'warning' || true
  done
done
echo "== done $(date -u +%H:%M:%S) load: $(cut -d' ' -f1-3 /proc/loadavg)"
