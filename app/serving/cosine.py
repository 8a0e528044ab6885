"""``CosineScorer``: cosine similarity to a query item, as a scorer over the item table.

Why: similar items are the cosine of an item's vector with every item's. Holding
the table at unit length would double its memory (1 GB more at 1,000,000 x 256,
allocated on a catalog's first similar request); dividing each product by the
item's norm (4 MB of norms) gives the same cosines from the table the model
already holds. ``LoadedModel.similar_scores`` / ``pool_similarity`` score with it,
and ``app.serving.similarity`` ranks similar lists with it from the similar-items
index, where the table at unit length is what the index holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from training.models.base import History, Scorer


class CosineScorer(Scorer):
    """Cosine similarity to a query item as an inner-product scorer.

    The state is the query item's unit vector; the table is the item vectors at
    unit length, never materialised as a second table: a score divides the
    product by the item's norm. The unit rows (what the index holds) are only
    made a chunk at a time, for the boosts' covariance (``inner_product_rows``).
    """

    name = "cosine"

    def __init__(self, vectors: Tensor) -> None:
        super().__init__({}, {"vectors": vectors.detach().float()})
        self.norms = self.t["vectors"].norm(dim=1).clamp_min(1e-12)  # (I,)

    @property
    def n_items(self) -> int:
        return int(self.t["vectors"].shape[0])

    def query(self, item: int) -> Tensor:
        """(1, d) the unit vector of ``item``: the state its similar list is ranked for."""
        return self.queries([item])

    def queries(self, items: Sequence[int]) -> Tensor:
        """(B, d) the unit vectors of ``items``: a micro-batch's similar lists in one product."""
        rows = torch.as_tensor(items, dtype=torch.long, device=self.norms.device)
        unit: Tensor = self.t["vectors"][rows] / self.norms[rows].unsqueeze(1)
        return unit

    def item_vectors(self) -> Tensor:
        """The model's item vectors, as they came: MMR's similarity in a similar list
        (``LoadedModel.pool_similarity`` on the view) is the model's own."""
        vectors: Tensor = self.t["vectors"]
        return vectors

    def user_state(self, users: Tensor, history: History) -> Tensor:
        raise NotImplementedError("a similarity ranking has items as queries, not users")

    def score(self, state: Tensor, items: Tensor | None = None) -> Tensor:
        """(B, d) unit query vectors -> (B, I) or (B, C) cosines."""
        vectors = self.t["vectors"]
        if items is None:
            full: Tensor = (state @ vectors.T) / self.norms
            return full
        items = items.to(vectors.device)
        some: Tensor = (state @ vectors[items].T) / self.norms[items]
        return some

    def inner_product_table(self) -> Tensor:
        """(I, d) the unit rows (``InnerProductScorer``; what the index holds)."""
        return self.inner_product_rows(0, self.n_items)

    def inner_product_rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of the unit rows, made only for those rows."""
        rows: Tensor = self.t["vectors"][start:stop] / self.norms[start:stop].unsqueeze(1)
        return rows

    def inner_product_queries(self, state: Tensor) -> Tensor:
        """The state is already the query (``InnerProductScorer``)."""
        return state
