"""docs/internals.md "Adding a model": its worked example is one file + one registry line.

The example's code is read from the doc itself, so the doc cannot drift from
what the shared parts (``training.models.common``) offer.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

from training.models import REGISTRY
from training.models.base import History
from training.pipeline import train_model

DOC = Path(__file__).resolve().parents[3] / "docs" / "internals.md"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory):
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### Adding a model") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the Adding a model section has no python example"
    path = tmp_path_factory.mktemp("example") / "logistic_mf.py"
    path.write_text(code.group(1), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("docs_logistic_mf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_the_example_is_one_file_plus_one_registry_line(example, structured, monkeypatch) -> None:
    monkeypatch.setitem(REGISTRY, "logistic-mf", example.LogisticMF)  # the registry line
    described = example.LogisticMF.Config.describe()
    assert described["lr"].startswith("learning rate of the optimiser (default: 0.005)")
    assert described["batch_size"].startswith("clicks per optimiser step")

    result = train_model("logistic-mf", structured.train, {"epochs": "3", "device": "auto"})
    assert result.report.epochs_run == 3
    scorer, model = result.scorer, result.model
    users = torch.arange(5)
    history = History.from_csr(structured.train.to_csr(), users.numpy())
    with torch.no_grad():
        served = scorer.score(scorer.user_state(users, history)).cpu()
    torch.testing.assert_close(served, model.reference_scores(users, history))
    again = type(scorer).from_tensors(scorer.config, scorer.tensors())
    folded = again.user_state(torch.full((5,), -1), history)
    assert folded.shape == (5, 32) and bool(torch.isfinite(folded).all())


def test_the_example_declares_a_search_space_its_config_accepts(example) -> None:
    import optuna

    space = example.LogisticMF.search_space
    space.check_fields(example.LogisticMF.Config)
    trial = optuna.trial.FixedTrial({"dim": 16, "reg": 1e-3, "lr": 1e-3})
    config = example.LogisticMF.Config().with_overrides(space.sample(trial))
    assert (config.dim, config.epochs) == (16, 30)
