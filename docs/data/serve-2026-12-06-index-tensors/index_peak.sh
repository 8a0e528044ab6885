#!/bin/bash
# Peak memory of `genrec models index` at 1,000,000 items x 600 (Mult-VAE's width), before
# (975b15f: the whole version loaded, encoder included) and after (this tree: only the
# tensors the item table is made of, ``InnerProductScorer.table_tensors``), one run each on
# the same store (the second run rebuilds both indexes).
#   the store: build_store(Path('/tmp/s1m600'), Path('../shared/data'), 1000000, 600, 'correlated', index=False)
#   bash docs/data/serve-2026-12-06-index-tensors/index_peak.sh > docs/data/serve-2026-12-06-index-tensors/index_peak.txt
cd "$(dirname "$0")/../../.."  # the repository root
[ -d /tmp/before-tensors ] || git worktree add -f /tmp/before-tensors 975b15f >/dev/null
for side in before after; do
  src=$([ $side = before ] && echo /tmp/before-tensors || echo $PWD)
  echo "== $side ($(date +%H:%M:%S))"
  GENREC_STORE_DIR=/tmp/s1m600 PYTHONPATH=$src /usr/bin/time -v .venv/bin/genrec models index mult-vae@2 2>&1 |
    grep -E "mult-vae|reading|Maximum resident|Elapsed"
done
