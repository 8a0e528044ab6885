"""Keep the cyclic garbage collector off the long-lived heap (imports, loaded models).

Why: a full (generation 2) collection walks every tracked object. After the
imports and one model load the server holds ~270k of them (FastAPI/pydantic
schemas, SQLAlchemy, torch), and a full pass took ~150 ms on the development
CPU (``benchmarks/serve_inprocess.py`` prints it frozen and unfrozen), stalling every in-flight request at once: under load those
pauses were the whole p99 (docs/performance.md). ``gc.freeze`` moves what
exists now into a permanent generation that collections skip, so they only
walk what requests allocate.

Objects freed by reference counting (a swapped-out model version, normally)
are still freed; only *cyclic* garbage that exists at the moment of freezing
is kept for good. No ``gc.collect`` runs first, because that full pass is
exactly the pause being avoided (and it would cost every model load, tests
included, the same 150 ms); the cyclic garbage of one load is small and
bounded.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> int:
    """Exempt every object alive now from future collections; returns how many are frozen."""
    gc.freeze()
    return gc.get_freeze_count()
