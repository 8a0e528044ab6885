#!/bin/bash
# The 12-07 morning session's request-path changes (strict JSON bodies, refresh_pending, the
# attribute cap) before and after: recs and the mix (wrk, 32 connections, median of 3),
# Postgres + Redis, one server, two interleaved rounds; nothing else running (13:12-13:17).
#   git worktree add --detach /tmp/before 96a2cd7
#   GENREC_STORE_DIR=/tmp/bench-store .venv/bin/genrec train --model mult-vae --data ml-100k --promote
#   GENREC_STORE_DIR=/tmp/bench-store .venv/bin/genrec train --model biased-mf --data ml-100k --promote
#   BEFORE=/tmp/before bash docs/data/serve-2026-12-07-pm/run.sh > docs/data/serve-2026-12-07-pm/ab.txt
cd "$(dirname "$0")/../../.."  # the repository root
BEFORE=${BEFORE:-/tmp/before} bash docs/data/serve-2026-12-07-ab/run.sh
