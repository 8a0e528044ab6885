#!/bin/bash
# Each of the mix's kinds alone, then known-user recs mixed with one other kind at its
# share of the mix: where a mix request's cost exceeds the sum of its parts.
#   bash docs/data/serve-2026-12-06-gil/pairs.sh   (kinds.txt, pairs.txt)
cd "$(dirname "$0")/../../.."  # the repository root
CTX=docs/data/serve-2026-12-06-threads/ctx_per_request.sh
bash $CTX recs predict mix-write mix-adhoc mix-new-recs mix
for m in 85:recs,15:mix-write 95:recs,5:predict 90:recs,10:mix-adhoc 90:recs,10:mix-new-recs \
    75:recs,15:mix-write,10:mix-new-recs; do
  echo "## $m"
  WRK_MIX=$m bash $CTX mix
done
