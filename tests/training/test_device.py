"""The one device resolver: what each setting means, and clear refusals."""

from __future__ import annotations

import pytest
import torch

from training.device import DeviceError, resolve_device
from training.models.base import ModelError


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("setting", ["gpu", "cuda0", "cuda:x", "", "tpu:1"])
def test_malformed_setting_is_refused_naming_the_choices(setting: str) -> None:
    with pytest.raises(DeviceError, match=r"auto, cpu, cuda or cuda:N"):
        resolve_device(setting)


def test_missing_gpu_is_refused_before_training() -> None:
    """A CUDA device this process cannot see: a message, not a torch traceback later."""
    if torch.cuda.is_available():
        beyond = f"cuda:{torch.cuda.device_count()}"
        with pytest.raises(DeviceError, match="CUDA device"):
            resolve_device(beyond)
    else:
        for setting in ("cuda", "cuda:0"):
            with pytest.raises(DeviceError, match="no CUDA device"):
                resolve_device(setting)


def test_device_error_reads_as_a_model_error_and_a_runtime_error() -> None:
    """The CLI prints ModelError as one line; the server's start-up caught RuntimeError."""
    assert issubclass(DeviceError, ModelError)
    assert issubclass(DeviceError, RuntimeError)
