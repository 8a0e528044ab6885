"""The click autoencoder's pieces: eq. 2 and its gradient, the input, the bf16 switch."""

from __future__ import annotations

import torch

from training.models.base import History
from training.models.common.click_autoencoder import (
    dense_forward,
    multinomial_nll,
    normalized_input,
)


def test_multinomial_nll_equals_dense_log_softmax() -> None:
    history = History.from_lists([[0, 2], [1, 3, 4]], None, 5)
    logits = torch.randn(2, 5)
    clicks = history.to_dense()
    expected = -(torch.log_softmax(logits, dim=1) * clicks).sum(1)  # eq. 2
    torch.testing.assert_close(multinomial_nll(logits, history, history.values), expected)


def test_multinomial_nll_gradient_is_the_softmax_minus_the_clicks() -> None:
    history = History.from_lists([[0, 2], [1, 3, 4]], [[1.0, 2.0], [1.0, 1.0, 3.0]], 5)
    logits = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    values = history.values.double()

    def nll(x: torch.Tensor) -> torch.Tensor:
        return multinomial_nll(x, history, values)

    assert torch.autograd.gradcheck(nll, (logits,))
    weights = torch.tensor([0.5, 2.0], dtype=torch.float64)
    (nll(logits) * weights).sum().backward()
    clicks = torch.zeros(2, 5, dtype=torch.float64)
    clicks[0, [0, 2]] = torch.tensor([1.0, 2.0], dtype=torch.float64)
    clicks[1, [1, 3, 4]] = torch.tensor([1.0, 1.0, 3.0], dtype=torch.float64)
    expected = weights[:, None] * (
        clicks.sum(1, keepdim=True) * torch.softmax(logits.detach(), 1) - clicks
    )
    torch.testing.assert_close(logits.grad, expected)


def test_normalized_input_has_unit_rows_and_scaled_dropout() -> None:
    history = History.from_lists([list(range(400)), [7]], None, 500)
    x = normalized_input(history, None, 0.0, training=False).to_dense()
    torch.testing.assert_close(x.norm(dim=1), torch.ones(2))
    torch.manual_seed(0)
    dropped = normalized_input(history, None, 0.5, training=True).to_dense()[0]
    kept = dropped[:400] != 0
    assert 0.35 < kept.float().mean() < 0.65
    torch.testing.assert_close(dropped[:400][kept], torch.full((int(kept.sum()),), 0.1))


def test_bf16_dense_layer_gives_float32_logits_and_gradients_close_to_float32() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 500)
    hidden = torch.randn(8, 32)
    exact = dense_forward(layer, hidden, bf16=False)
    exact.sum().backward()
    exact_grad = layer.weight.grad.clone()
    layer.weight.grad = None
    approx = dense_forward(layer, hidden, bf16=True)
    approx.sum().backward()
    assert approx.dtype == torch.float32 and layer.weight.grad.dtype == torch.float32
    # bfloat16 keeps 8 significant bits: about 2-3 decimal digits of each product
    torch.testing.assert_close(approx, exact, atol=0.05, rtol=0.02)
    torch.testing.assert_close(layer.weight.grad, exact_grad, atol=0.05, rtol=0.02)
