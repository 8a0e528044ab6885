#!/bin/bash
# A server's start-up peak at 1,000,000 items x 256 with both indexes (GENREC_ANN=on):
# the same in-process start-up and first similar lists as
# docs/data/serve-2026-12-06-similar/similar_call.py, under /usr/bin/time -v, before
# (2c21005: the tensors file read by safetensors' load_file, the boosts' covariances
# built from the whole inner-product table, then the whole unit-length table) and after
# (this tree: one array per mapping, the covariances a chunk of rows at a time),
# interleaved twice. anon_peak.py (beside this script) splits the peak by step and
# gives its anonymous part.
#   the store: build_store(Path('/tmp/s1m'), Path('../shared/data'), 1000000, 256, 'correlated', index=True)
#   bash docs/data/serve-2026-12-06-memory/startup_peak.sh > docs/data/serve-2026-12-06-memory/startup_peak.txt
cd "$(dirname "$0")/../../.."  # the repository root
[ -d /tmp/before-startup ] || git worktree add -f /tmp/before-startup 2c21005 >/dev/null
run() {  # side
  local src=$([ $1 = before ] && echo /tmp/before-startup || echo $PWD)
  echo "== $1 ($(date +%H:%M:%S))"
  PYTHONPATH=$src /usr/bin/time -v .venv/bin/python \
    docs/data/serve-2026-12-06-similar/similar_call.py /tmp/s1m on 2>&1 |
    grep -E "loaded|first list|plain|mmr|answered|Maximum resident|Elapsed"
}
for round in 1 2; do
  run before
  run after
done
for side in before after; do
  src=$([ $side = before ] && echo /tmp/before-startup || echo $PWD)
  echo "== anon_peak.py, $side ($(date +%H:%M:%S))"
  PYTHONPATH=$src .venv/bin/python docs/data/serve-2026-12-06-memory/anon_peak.py /tmp/s1m 2>&1 | grep -v Warn
done
