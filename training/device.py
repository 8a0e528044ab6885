"""The one reading of a ``device`` setting: ``auto | cpu | cuda | cuda:N``.

Every model's ``device`` setting, the server's and the worker's
``GENREC_DEVICE`` go through ``resolve_device``, so ``auto`` means the same
everywhere (CUDA when this process sees a GPU, else CPU) and a CUDA device
that is not there is refused before any tensor is built, with a message that
says so instead of a torch traceback from deep inside training.
"""

from __future__ import annotations

import re

import torch

from training.errors import ModelError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_CUDA = re.compile(r"^cuda(:\d+)?$")


class DeviceError(ModelError, RuntimeError):
    """A device setting that is malformed or names a GPU this process cannot see."""


def check_device_name(setting: str) -> str:
    """``setting`` normalised, or ``DeviceError`` when it is none of ``DEVICE_CHOICES``.

    The spelling only, not whether the GPU is there: a model config checks it when
    made (``DeviceSetting.check``), so ``POST /admin/retrain`` refuses a typo at once
    on a server that may have no GPU, rather than a worker failing the job later.
    """
    name = setting.strip().lower()
    if name not in ("auto", "cpu") and not _CUDA.match(name):
        raise DeviceError(f"device must be {DEVICE_CHOICES}; got {setting!r}")
    return name


def resolve_device(setting: str | torch.device) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> a torch device."""
    if isinstance(setting, torch.device):
        return setting
    name = check_device_name(str(setting))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device={setting!r} but torch sees no CUDA device")
    index = int(name.split(":")[1]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"device={setting!r} but torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    return torch.device(name)
