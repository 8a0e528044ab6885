"""Most-popular baseline: rank every item by how many training users interacted with it.

No paper; the non-personalised floor every top-k table needs (Liang et al.
2018 and Steck 2019 both report models against it implicitly through their
baselines), and the serving fallback's ranking.

Serving card
    State        (B, 1)  ones: the score does not depend on the user.
    Item tensors counts (I,)  number of distinct training users per item.
    Score        (B, I)  state * counts  (a rank-1 product, same for everyone).
    Ratings      none: ``predict`` raises NotARatingModel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from training.data.interactions import Interactions
from training.models.base import (
    EpochCallback,
    FitReport,
    History,
    Model,
    ModelConfig,
    ModelError,
    Scorer,
    Validation,
)
from training.models.common.search import SearchSpace
from training.trainer import single_step_report


@dataclass
class PopularityConfig(ModelConfig):
    """No hyper-parameters beyond the seed: popularity is fully determined by the data."""


#: Nothing to search: popularity is fully determined by the data (``genrec tune`` fits it once).
SEARCH_SPACE = SearchSpace()


class PopularityScorer(Scorer):
    """Scores every user alike by the item counts (the state is a dummy column of ones)."""

    name = "popularity"
    predicts_ratings = False

    def user_state(self, users: Tensor, history: History) -> Tensor:
        """(B,) users, histories -> (B, 1) ones; history is deliberately ignored."""
        return torch.ones(users.shape[0], 1, device=self.device)

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, 1) state, optional (C,) items -> (B, I) or (B, C) counts."""
        counts = self.t["counts"] if items is None else self.t["counts"][items]
        return state * counts.unsqueeze(0)


class Popularity(Model):
    """Counts distinct users per item on the training data."""

    name = "popularity"
    task = "topk"
    closed_form = True
    Config = PopularityConfig
    search_space = SEARCH_SPACE
    scorer_cls = PopularityScorer

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__(config)
        self.counts: Tensor | None = None
        self._scorer_config: dict[str, object] = {}

    def fit(
        self,
        train: Interactions,
        validation: Validation | None = None,
        callbacks: list[EpochCallback] | None = None,
    ) -> FitReport:
        started = time.perf_counter()
        matrix = train.to_csr("ones")
        self.counts = torch.as_tensor(np.asarray(matrix.sum(axis=0)).ravel(), dtype=torch.float32)
        self._scorer_config = self.base_scorer_config(train)
        return single_step_report(
            time.perf_counter() - started, validation, self.to_scorer(), callbacks
        )

    def to_scorer(self) -> PopularityScorer:
        if self.counts is None:
            raise ModelError("popularity: call fit() before to_scorer()")
        return PopularityScorer(self._scorer_config, {"counts": self.counts.clone()})

    def reference_scores(self, users: Tensor, history: History) -> Tensor:
        """(B, I): the count vector repeated for each user."""
        if self.counts is None:
            raise ModelError("popularity: call fit() before reference_scores()")
        return self.counts.unsqueeze(0).expand(users.shape[0], -1).clone()
