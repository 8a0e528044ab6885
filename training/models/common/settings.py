"""The training settings models share, declared once with one help text each.

A model's Config inherits the groups it has and overrides only their
defaults (a plain ``lr: float = 2e-3`` keeps this help text:
``ModelConfig.describe`` reads help from the class that declared the field).
Groups, so a model never carries a setting it ignores:

* ``DeviceSetting``    device
* ``EarlyStopping``    patience
* ``EpochSettings``    epochs, patience, device (iterative training)
* ``TrainingConfig``   the above plus lr and batch_size (mini-batch gradient training)
* ``ValidateEvery``    validate_every (models that validate less often than every epoch)

``device`` is read by ``training.device.resolve_device`` in every model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from training.device import DEVICE_CHOICES, check_device_name
from training.models.base import ModelConfig, ModelError

DEVICE_HELP = f"torch device for training: {DEVICE_CHOICES} (auto: CUDA when available)"
EPOCHS_HELP = "maximum training epochs (patience may stop sooner)"
PATIENCE_HELP = "stop after this many validations without improvement (None: never early)"
LR_HELP = "learning rate of the optimiser"
BATCH_HELP = "{batch_unit} per optimiser step"
VALIDATE_EVERY_HELP = "validate every N epochs"


@dataclass
class DeviceSetting(ModelConfig):
    """Where training runs."""

    device: str = field(default="cpu", metadata={"help": DEVICE_HELP})

    def check(self) -> None:
        super().check()
        check_device_name(str(self.device))  # which GPUs exist is the training machine's


@dataclass
class EarlyStopping(ModelConfig):
    """Keep the best validated epoch; stop when validation stops improving."""

    patience: int | None = field(default=None, metadata={"help": PATIENCE_HELP})


@dataclass
class EpochSettings(EarlyStopping, DeviceSetting):
    """Iterative training: an epoch budget, early stopping on validation, a device."""

    epochs: int = field(default=100, metadata={"help": EPOCHS_HELP})

    def check(self) -> None:
        super().check()
        if self.epochs < 1:
            raise ModelError(f"epochs must be >= 1, got {self.epochs}")


@dataclass
class TrainingConfig(EpochSettings):
    """Mini-batch gradient training: epochs, early stopping, learning rate, batch size.

    ``batch_unit`` names what one batch holds (users, items, ratings, triples),
    for the help text of ``batch_size``.
    """

    batch_unit: ClassVar[str] = "examples"

    lr: float = field(default=1e-3, metadata={"help": LR_HELP})
    batch_size: int = field(default=256, metadata={"help": BATCH_HELP})

    @classmethod
    def describe(cls) -> dict[str, str]:
        described = super().describe()
        described["batch_size"] = described["batch_size"].replace("{batch_unit}", cls.batch_unit)
        return described

    def check(self) -> None:
        super().check()
        if not self.lr > 0:
            raise ModelError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass
class ValidateEvery(ModelConfig):
    """Validation cadence, for models whose validation costs a noticeable share of an epoch."""

    validate_every: int = field(default=1, metadata={"help": VALIDATE_EVERY_HELP})

    def check(self) -> None:
        super().check()
        if self.validate_every < 1:
            raise ModelError(f"validate_every must be >= 1, got {self.validate_every}")
