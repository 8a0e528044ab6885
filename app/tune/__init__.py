"""Tune jobs: ``genrec tune`` run by the worker fleet on the service's own log (issue #17).

* ``jobs``    the request (``POST /admin/tune``, the schedule), its validation, enqueueing
* ``study``   where the Optuna study lives: the service database (Postgres schema
  ``optuna``; a sibling SQLite file when embedded)
* ``winner``  refit the winner, score production, decide the gate (shared with the CLI)
* ``runner``  the lead worker's job (search, wait, refit, save, gate, promote, finish)
  and a helper worker's part (trials of the same study until the search window ends)

A tune job is a row of ``retrain_jobs`` with ``kind = 'tune'``: the same lease,
fencing, progress, log tail, cancellation and retries as a retrain job
(``app/retrain/lifecycle``).
"""
