#!/bin/bash
# Peak memory of `genrec models index` at 1,000,000 items x 600 (Mult-VAE's width), before
# (8b0c9a6: the table built whole, each index serialised to bytes and held until the store
# wrote them) and after (this tree: the table read a chunk at a time, each index written to
# a file of the store's scratch directory as soon as it is built, the model's tensors freed
# before the similar-items index is built), one run each on the same store (the second run
# rebuilds both indexes, as `genrec models index` on an indexed version does).
#   the store: build_store(Path('/tmp/s1m600'), Path('../shared/data'), 1000000, 600, 'correlated', index=False)
#   bash docs/data/serve-2026-12-06-memory/index_peak.sh > docs/data/serve-2026-12-06-memory/index_peak.txt
cd "$(dirname "$0")/../../.."  # the repository root
[ -d /tmp/before-index ] || git worktree add -f /tmp/before-index 8b0c9a6 >/dev/null
for side in before after; do
  src=$([ $side = before ] && echo /tmp/before-index || echo $PWD)
  echo "== $side ($(date +%H:%M:%S))"
  GENREC_STORE_DIR=/tmp/s1m600 PYTHONPATH=$src /usr/bin/time -v .venv/bin/genrec models index mult-vae@2 2>&1 |
    grep -E "mult-vae|Maximum resident|Elapsed"
done
