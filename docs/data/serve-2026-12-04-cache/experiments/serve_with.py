"""`genrec serve` with one interpreter or writer knob changed, for an experiment only.

    SWITCH_S=0.02 python serve_with.py PORT   # sys.setswitchinterval (default 0.005 s)
    NO_LONE=1 python serve_with.py PORT       # the interaction writer always waits its window

NO_LONE turns off the group-commit rule that a lone write after a lone group is written at
once, so every write waits GENREC_INTERACTION_COMMIT_WAIT_MS for company (run.sh).
"""

from __future__ import annotations

import os
import sys

import uvicorn

if os.environ.get("SWITCH_S"):
    sys.setswitchinterval(float(os.environ["SWITCH_S"]))
if os.environ.get("NO_LONE"):
    from app.serving.group_commit import GroupCommit

    GroupCommit._last_group = property(lambda self: 99, lambda self, value: None)  # type: ignore[assignment]

uvicorn.run(
    "app.main:create_app",
    factory=True,
    host="127.0.0.1",
    port=int(sys.argv[1]),
    log_level="warning",
)
