#!/usr/bin/env bash
# Every GPU figure of docs/performance.md ("On a GPU") in one run, because a lent
# GPU comes with minutes, not hours (issue #20, part 4):
#
#   1. Mult-VAE seconds per epoch on the synthetic 100,000 x 20,000 matrix,
#      float32 and bf16 (benchmarks/train_speed.py), then torch.profiler's table of
#      one float32 epoch (train-profile.txt; PROFILE_TRAIN= skips it): the 2026-12-04
#      run found the epoch host-bound;
#   2. the serve benchmark with GENREC_DEVICE=cuda, exact scoring
#      (GENREC_ANN=off), recs and the bare endpoint at 1/8/32/128 connections,
#      for the ML-100K store (1,682 items) and synthetic catalogs of 100,000 and
#      1,000,000 items widened from it (benchmarks/serve_bench.py --items);
#   3. if time is left (and DEVICE is not cpu), the 100,000-item cell again on
#      the same machine's CPU, so the GPU is compared with the CPU beside it and
#      not only with the 2-core development VM.
#
# Usage, from the repository root (BASE_STORE: a store serve_bench.py built,
# e.g. by a run without --store; on the lent machine it is carried, since the
# data set is not there):
#
#   BASE_STORE=/tmp/bench-store OUT=/tmp/gpu-out bash benchmarks/gpu_session.sh
#
# On the lent machine (docs/performance.md, "On a GPU"): the store copied to
# .gpu/store and the wheels the image lacks downloaded into .whl/ (both
# ignored through .git/info/exclude), carried, and `OUT=$OUT bash
# benchmarks/gpu_session.sh` run there.
#
# Settings (environment): DEVICE (cuda), SIZES ("base 100000 1000000"),
# TRAIN_USERS/TRAIN_ITEMS/TRAIN_CLICKS (100000/20000/7000000), SKIP_TRAIN, DURATION (5),
# CPU_CHECK_BEFORE_S (420: the CPU cell runs only if the GPU part ended by then),
# PYTHON (python3), WHEELS (.whl). Wheels in $WHEELS are installed into /tmp/site first (the
# lent machine has PyTorch but not FastAPI and friends). Output: one text file
# per part in $OUT, plus every server log but its access lines.
set -u
OUT=${OUT:-/tmp/gpu-out}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
BASE=${BASE_STORE:-.gpu/store}
SIZES=${SIZES-base 100000 1000000}
DURATION=${DURATION:-5}
LOGS=$(mktemp -d /tmp/gpu-logs.XXXX)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WHEELS=${WHEELS:-.whl}
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

{
    date -u
    nvidia-smi 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'numpy', numpy.__version__); print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
    echo "cpus $(nproc)"; free -g | head -2
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

if ! err=$("$PY" -c "import app.main" 2>&1); then  # a missing package: say which, stop early
    echo "$err" | tail -n 25 | tee "$OUT/import-error.txt"
    exit 1
fi
echo "== training: Mult-VAE s/epoch, ${TRAIN_USERS:-100000} x ${TRAIN_ITEMS:-20000}" | tee "$OUT/train.txt"
for precision in ${SKIP_TRAIN:+skip} "" "--bf16"; do
    [ "$precision" = skip ] && { echo "skipped (SKIP_TRAIN)" | tee -a "$OUT/train.txt"; break; }
    timeout 150 "$PY" -m benchmarks.train_speed --workload synthetic \
        --users "${TRAIN_USERS:-100000}" --items "${TRAIN_ITEMS:-20000}" \
        --clicks "${TRAIN_CLICKS:-7000000}" --device "$DEVICE" --epochs 3 $precision 2>&1 |
        tail -n 5 | tee -a "$OUT/train.txt"
done
if [ -z "${SKIP_TRAIN:-}" ] && [ -n "${PROFILE_TRAIN:-1}" ]; then  # where a host-bound epoch goes
    timeout 150 "$PY" -m benchmarks.train_speed --workload synthetic \
        --users "${TRAIN_USERS:-100000}" --items "${TRAIN_ITEMS:-20000}" \
        --clicks "${TRAIN_CLICKS:-7000000}" --device "$DEVICE" --epochs 1 --profile 2>&1 |
        grep -v -e UserWarning -e sparse_coo_tensor -e USDT >"$OUT/train-profile.txt"
fi

serve() {  # serve NAME SIZE DEVICE: one serve_bench run, its table in $OUT/serve-NAME.txt
    local name=$1 size=$2 device=$3 store=/tmp/gpu-store-$1
    local args=(--store "$store" --endpoints constant,recs --duration "$DURATION"
        --server-env "GENREC_DEVICE=$device" --server-env GENREC_ANN=off
        --server-log-dir "$LOGS/$name")
    rm -rf "$store"
    if [ "$size" = base ]; then cp -r "$BASE" "$store"; else args+=(--items "$size" --base-store "$BASE"); fi
    echo "== serve $name: $size items on $device" | tee "$OUT/serve-$name.txt"
    local started=$SECONDS
    timeout 300 "$PY" benchmarks/serve_bench.py "${args[@]}" 2>&1 | tee -a "$OUT/serve-$name.txt"
    echo "# wall $((SECONDS - started)) s (store build, server start and cells)" | tee -a "$OUT/serve-$name.txt"
    rm -rf "$store"
}

for size in $SIZES; do
    serve "$size-$DEVICE" "$size" "$DEVICE"
done
if [ "$DEVICE" = cpu ]; then
    :  # the sizes above were the CPU's already
elif [ "$SECONDS" -lt "${CPU_CHECK_BEFORE_S:-420}" ]; then
    serve 100000-cpu 100000 cpu
else
    echo "== skipped the CPU cell: ${SECONDS} s spent" | tee "$OUT/serve-100000-cpu.txt"
fi
for log in "$LOGS"/*/*.log; do
    [ -e "$log" ] && { echo "== $log"; grep -v "\"logger\": \"app.access\"" "$log" | tail -n 60; }
done >"$OUT/server-logs.txt" 2>&1
echo "done in $SECONDS s"
