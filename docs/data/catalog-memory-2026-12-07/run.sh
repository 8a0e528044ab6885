#!/bin/bash
# The catalog sync's per-item structures at 1,000,000 and 100,000 items, before
# (96a2cd7: AttributeIndex copied the dict of every item per update; the rows' own id,
# title and attribute strings kept) and after (this tree), with the same script
# (benchmarks/catalog_memory.py of this tree; the packages from the side's tree on
# PYTHONPATH). At 1M only the timed pass (RSS, CPU times): the traced one doubles a
# run that took ~30 min before. The two sides ran at the same time, on the 2-core
# machine shared with other work. Writes {before,after}-{1000000,100000}.txt here.
#   bash docs/data/catalog-memory-2026-12-07/run.sh
cd "$(dirname "$0")/../../.."  # the repository root
out=docs/data/catalog-memory-2026-12-07
[ -d /tmp/before-catalog-memory ] || git worktree add -f /tmp/before-catalog-memory 96a2cd7 >/dev/null
side() {  # before|after
  local src=$([ $1 = before ] && echo /tmp/before-catalog-memory || echo $PWD)
  PYTHONPATH=$src .venv/bin/python benchmarks/catalog_memory.py --items 1000000 --passes timed > $out/$1-1000000.txt
  PYTHONPATH=$src .venv/bin/python benchmarks/catalog_memory.py --items 100000 > $out/$1-100000.txt
}
side before & side after & wait
