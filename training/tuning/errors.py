"""The one error a tuning run raises for bad input (the CLI prints it as one line)."""

from __future__ import annotations

from training.errors import ModelError


class TuningError(ModelError):
    """Bad tuning input: unknown model, wrong task, too small a budget or data set."""
