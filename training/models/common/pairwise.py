"""BPR's learning step: uniform (u, i, j) triples and one LearnBPR update.

Rendle et al., UAI 2009: BPR-Opt (Sec. 4.1, eq. for BPR-Opt) maximised by
LearnBPR (Sec. 4.2, Fig. 4) with bootstrap sampling of triples; here with
mini-batch Adam. Optional dynamic negative sampling (DNS, Zhang et al. SIGIR
2013: the best-scored of ``dns_k`` uniform candidates). Used by BPR-MF and by
IRGAN to pre-train its generator.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from training import distributed
from training.data.interactions import Interactions
from training.models.base import UnsuitableData
from training.models.common.mf import ItemBiasMF


def positive_matrix(train: Interactions, threshold: float | None) -> sp.csr_matrix:
    """(U, I) 0/1 matrix of positive pairs: rating > threshold on explicit data."""
    data = train.binarize(threshold if train.explicit else None)
    if len(data) == 0:
        raise UnsuitableData(
            f"no positive interactions to train on (positive_threshold={threshold}); "
            "lower the threshold or pass implicit data"
        )
    return data.to_csr(values="ones")


def learnable_pairs(positives: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    r"""(users, items) of the positive pairs that have a triple; ``UnsuitableData`` if none.

    BPR-Opt sums over D_S = {(u, i, j): i in I+_u, j in I \ I+_u} (Rendle et al.,
    Sec. 3.1): a user with every item positive has no triple, and drawing a j for
    them looped for good (``negatives``' rejection never ends). They are left out.
    """
    n_items = positives.shape[1]
    full = np.diff(positives.indptr) >= n_items
    coo = positives.tocoo()
    keep = ~full[coo.row]
    users, items = coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64)
    if len(users) == 0:
        raise UnsuitableData(
            f"no (user, positive, negative) triple to learn from: every user with a "
            f"positive has all {n_items} items positive; BPR ranks an item a user "
            "has against one they have not"
        )
    return users, items


def check_pairwise(train: Interactions, threshold: float | None) -> None:
    """What BPR-MF and IRGAN need of the data (their ``check_data``): a positive pair with
    a negative item to rank it against, for some user."""
    learnable_pairs(positive_matrix(train, threshold))


class TripleSampler:
    """Uniform (u, i) over positive pairs, j over the user's non-positives (LearnBPR)."""

    def __init__(self, positives: sp.csr_matrix, rng: np.random.Generator) -> None:
        self.n_items = positives.shape[1]
        self.users, self.items = learnable_pairs(positives)
        # Sorted u*I+i keys make the "is j a positive of u" test one searchsorted.
        self._keys = np.sort(self.users * self.n_items + self.items)
        self.rng = rng

    def __len__(self) -> int:
        return len(self.users)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        pos = np.searchsorted(self._keys, keys).clip(max=len(self._keys) - 1)
        return self._keys[pos] == keys

    def negatives(self, users: np.ndarray, k: int) -> np.ndarray:
        """(len(users), k) items none of which is a positive of its user (rejection)."""
        out = self.rng.integers(0, self.n_items, size=(len(users), k))
        rows = np.repeat(users[:, None], k, axis=1)
        bad = self.is_positive(rows, out)
        while bad.any():
            out[bad] = self.rng.integers(0, self.n_items, size=int(bad.sum()))
            bad = self.is_positive(rows, out)
        return out

    def epoch(self, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """One epoch: |positives| bootstrap draws of (u, i), cut into batches.

        On N processes (``training.distributed``) each rank makes 1/N of the
        draws in batches of ``batch_size / N``, from its own stream (the
        caller seeds ``rng`` per rank): bootstrap draws are independent, so
        ranks drawing apart is the same as sharing one global draw.
        """
        step = distributed.rank_batch_size(batch_size)
        draw = self.rng.integers(0, len(self.users), size=distributed.rank_share(len(self.users)))
        return [
            (self.users[draw[s : s + step]], self.items[draw[s : s + step]])
            for s in range(0, len(draw), step)
        ]


def bpr_step(
    mf: ItemBiasMF,
    opt: torch.optim.Optimizer,
    sampler: TripleSampler,
    users_np: np.ndarray,
    items_np: np.ndarray,
    reg: float,
    dns_k: int,
    forward: distributed.ForwardRunner[tuple[Tensor, Tensor]] = distributed.run_locally,
) -> float:
    """One LearnBPR step on a batch; returns the mean -ln σ(x̂_uij) of the batch.

    ``forward`` runs the loss (``training.distributed.data_parallel``: through
    DDP on several processes, so the gradients are averaged across ranks).
    """
    device = mf.item_bias.device
    cands = torch.as_tensor(sampler.negatives(users_np, dns_k), device=device)
    users = torch.as_tensor(users_np, device=device)
    items = torch.as_tensor(items_np, device=device)
    if dns_k > 1:  # DNS: keep the candidate the current model ranks highest
        with torch.no_grad():
            best = mf.pair_logits(users, cands).argmax(dim=1, keepdim=True)
        neg = cands.gather(1, best).squeeze(1)
    else:
        neg = cands[:, 0]

    def losses() -> tuple[Tensor, Tensor]:
        x_uij = mf.pair_logits(users, items) - mf.pair_logits(users, neg)
        ranking = -torch.nn.functional.logsigmoid(x_uij).mean()  # BPR-Opt, eq. (4)/section 4.1
        penalty = (
            mf.user_factors[users].pow(2).sum(1)
            + mf.item_factors[items].pow(2).sum(1)
            + mf.item_factors[neg].pow(2).sum(1)
            + mf.item_bias[items].pow(2)
            + mf.item_bias[neg].pow(2)
        ).mean()
        return ranking, ranking + reg * penalty  # λ_Θ ||Θ||² per sampled triple

    ranking, loss = forward(losses)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(ranking.detach())
