#!/bin/bash
# Peak memory of saving a 1,000,000-item version (serve_bench's build_store: Mult-VAE trained
# on ML-100K, widened to 1M x 256, saved with store.save, no index), before (5a96aa9: the
# tensors file made as bytes and written) and after (this tree: safetensors' save_file to the
# store's scratch directory, the file moved in), interleaved twice, each into a fresh store.
#   bash docs/data/serve-2026-12-06-memory/save_peak.sh > docs/data/serve-2026-12-06-memory/save_peak.txt
cd "$(dirname "$0")/../../.."  # the repository root
root=$PWD
[ -d /tmp/before-save ] || git worktree add -f /tmp/before-save 5a96aa9 >/dev/null
export GENREC_DATA_DIR=../shared/data
for round in 1 2; do
  for side in before after; do
    src=$([ $side = before ] && echo /tmp/before-save || echo $root)
    rm -rf /tmp/save-peak-store
    echo "== $side ($(date +%H:%M:%S))"
    (cd /tmp && PYTHONPATH=$src /usr/bin/time -v $root/.venv/bin/python -c "
from pathlib import Path
from benchmarks.serve_bench import build_store
build_store(Path('/tmp/save-peak-store'), Path('$root/../shared/data'), 1000000, 256, 'correlated', index=False)
" 2>&1 | grep -E "widened|Maximum resident|Elapsed")
  done
done
rm -rf /tmp/save-peak-store
