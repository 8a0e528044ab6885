#!/bin/bash
# Interaction writes while Redis is frozen (SIGSTOP), before (worktree /tmp/before of the
# commit before "writes leave the cache alone") and after (this tree), 1 and 4 clients.
#   git worktree add -f /tmp/before <commit>; bash docs/data/serve-2026-12-04-writes/frozen_redis.sh
cd "$(dirname "$0")/../../.."  # the repository root
ROOT=$PWD
for c in 1 4; do for src in /tmp/before $ROOT; do
  echo "== $(git -C $src log --oneline -1 | cut -c1-7)$([ $src = $ROOT ] && echo ' (this tree)'), clients $c"
  (cd $src && PYTHONPATH=$src $ROOT/.venv/bin/python benchmarks/frozen_redis.py --clients $c 2>&1 | tail -4)
done; done
