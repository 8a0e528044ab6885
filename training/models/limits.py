"""The largest value each integer setting of a model may take: the size of a training job.

Why: settings were bounded below only, so ``POST /admin/retrain`` with
``{"epochs": 2**62}`` (or ``genrec train --set epochs=...``) was accepted and
trained "forever", holding a worker; a width of ``2**40`` failed only when its
tensor was allocated, minutes in. ``ModelConfig.check`` applies these bounds
wherever a config is made, so the CLI and the API refuse the same values with
the same message. They sit far above what the papers and the search spaces use
(``tests/training/models/test_setting_limits.py`` checks the spaces fit): they
stop runaway jobs, not large realistic ones. Documented in README ("HTTP API
input").
"""

from __future__ import annotations

#: Epochs, and the step counts and cadences measured like them.
MAX_EPOCHS = 10_000
#: Examples (users, items, ratings or triples) in one batch.
MAX_BATCH_SIZE = 10_000_000
#: Width of a layer or an embedding (factors, hidden units, filters).
MAX_WIDTH = 65_536
#: Any other integer setting, and each number of a list setting (``windows``): what a
#: 32-bit index holds, so no setting overflows the tensors it sizes.
MAX_INTEGER = 2**31 - 1

#: Setting name -> its largest value (a name means the same in every model).
LIMITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "epochs",
            "cnn_epochs",
            "pretrain_epochs",
            "gan_epochs",
            "game_epochs",
            "d_epochs",
            "g_epochs",
            "cd_stage_epochs",
            "patience",
            "pretrain_patience",
            "validate_every",
            "d_resample_every",
            "fold_in_steps",
            "cd_steps",  # Gibbs steps of each update (cf-rbm's CD-T; the paper's T <= 9)
        ),
        MAX_EPOCHS,
    ),
    **dict.fromkeys(
        ("batch_size", "cnn_batch_size", "d_batch_size", "pretrain_batch_size"), MAX_BATCH_SIZE
    ),
    **dict.fromkeys(
        (
            "dim",
            "factors",
            "hidden",
            "hidden_dim",
            "latent_dim",
            "emb_dim",
            "proj_dim",
            "filters",
            "factored_rank",
        ),
        MAX_WIDTH,
    ),
    "max_len": 100_000,  # words kept per item text
    "windows": 100_000,  # words a convolution window spans (convmf's; the paper's 3-5)
    "vocab_size": 10_000_000,
    "total_anneal_steps": 1_000_000_000,  # gradient steps; mult-vae's default is 200,000
    "dns_k": 1_000,  # negatives drawn per positive
    "g_samples_per_positive": 1_000,
}

#: Settings with a range of their own, checked by the model (the seed: numpy's).
UNBOUNDED_HERE = frozenset({"seed"})


def limit_of(name: str) -> int:
    """The largest value setting ``name`` may take."""
    return LIMITS.get(name, MAX_INTEGER)


def size_problem(name: str, value: object) -> str | None:
    """Why ``value`` is too large for setting ``name``, or None (non-integers: None)."""
    if name in UNBOUNDED_HERE:
        return None
    numbers = value if isinstance(value, tuple | list) else (value,)
    limit = limit_of(name)
    for number in numbers:
        if isinstance(number, int) and not isinstance(number, bool) and number > limit:
            return f"{name} must be at most {limit:,}, got {number}"
    return None
