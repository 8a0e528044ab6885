"""The trainer module imports on its own, before anything else has loaded the models."""

from __future__ import annotations

import subprocess
import sys


def test_trainer_imports_first_in_a_fresh_interpreter() -> None:
    code = (
        "from training.trainer import EpochLoop, fit_epochs\n"
        "loop = EpochLoop(lambda e: {'loss': float(e)}, lambda: None, lambda: {}, lambda s: None)\n"
        "report = fit_epochs(loop, 2)\n"
        "print(report.epochs_run, report.best_epoch)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]  # no validation: the last epoch is kept
