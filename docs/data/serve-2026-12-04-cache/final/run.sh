#!/bin/bash
# The serve benchmark's wrk cells (recs, mix; embedded and Postgres+Redis; median of 3),
# 95ed6f1 (before this evening's changes, a worktree at /tmp/before) against this tree,
# with all of them: the read engine, the memory tier, the writer on a Connection.
cd "$(dirname "$0")"
HERE=$PWD
BEFORE=95ed6f1 PARTS=recs,mix OUT=/work/wrk-final DB=genrec_final bash ../../serve-2026-12-03-adhoc/run.sh
cp /work/wrk-final/*.txt $HERE/
