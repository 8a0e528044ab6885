"""Automatic model selection on the operator's own data (``genrec tune``, issue #17).

Optuna drives the search (TPE sampler, a median pruner fed by the per-epoch
validation figures ``training.trainer`` already computes); this package only
says what to search and on what:

* ``candidates``  which models a run may search (task, data), with clear errors, and
                  ``screen``: those that cannot train on the data are left out, with why
* ``dropping``    which models leave while the trials run, and the sampler that skips them
* ``split``       the validation split from the operator's data (never a test set)
* ``pruning``     the epoch callback that reports to Optuna and the per-model pruner
* ``objective``   one trial: model + sampled settings -> fit -> validation figure
* ``search``      the study: budget, trial cap, storage URL, progress callback
* ``report``      the leaderboard and the JSON-able tuning report
* ``plot``        the PNG of the search (best figure over time, per model)

Refitting the winner, the gate and promotion are the CLI's (``app/cli/tune.py``)
because the gate lives with retraining in ``app``; ``training`` never imports ``app``.
"""

from training.tuning.errors import TuningError

__all__ = ["TuningError"]
