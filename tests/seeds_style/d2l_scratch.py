"""d2l's RNNScratch: time-major (``for X in inputs``), weights as (inputs, hiddens), one
bias ``b_h`` where PyTorch has two, a state tuple ``(H,)`` and ``begin_state``. Correct.

Declared with today's fields as written before layouts existed: ``batch_first=False``
means time-major only, ``unbatched=False`` batched only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


class RNNScratch(nn.Module):
    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01) -> None:
        super().__init__()
        self.num_hiddens = num_hiddens
        self.W_xh = nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma)
        self.W_hh = nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma)
        self.b_h = nn.Parameter(torch.zeros(num_hiddens))

    def forward(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        (H,) = state
        outputs = []
        for X in inputs:
            H = torch.tanh(torch.matmul(X, self.W_xh) + torch.matmul(H, self.W_hh) + self.b_h)
            outputs.append(H)
        return torch.stack(outputs, dim=0), (H,)

    def begin_state(self, batch_size: int, device: Any, dtype: Any) -> tuple[torch.Tensor]:
        return (torch.zeros((batch_size, self.num_hiddens), device=device, dtype=dtype),)


# --- the adapter: transposed weights, the two biases folded into one ----------------------


def build(config: RNNConfig, device: Any, dtype: Any) -> RNNScratch:
    return RNNScratch(config.input_size, config.hidden_size).to(device=device, dtype=dtype)


def load_weights(net: RNNScratch, weights: Mapping[str, torch.Tensor]) -> None:
    with torch.no_grad():
        net.W_xh.copy_(weights["weight_ih_l0"].T)
        net.W_hh.copy_(weights["weight_hh_l0"].T)
        net.b_h.copy_(weights["bias_ih_l0"] + weights["bias_hh_l0"])


def gradients(net: RNNScratch) -> dict[str, Any]:
    """b_h is b_ih + b_hh: its gradient is the gradient of each."""
    return {
        "weight_ih_l0": net.W_xh.grad.T,
        "weight_hh_l0": net.W_hh.grad.T,
        "bias_ih_l0": net.b_h.grad,
        "bias_hh_l0": net.b_h.grad,
    }


def call(net: RNNScratch, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dim() != 3:
        raise ValueError(f"RNNScratch takes (seq, batch, input), got {x.dim()}-D input")
    batch = x.shape[1]
    if hx is None:
        state = net.begin_state(batch, x.device, x.dtype)
    elif isinstance(hx, torch.Tensor) and tuple(hx.shape) == (1, batch, net.num_hiddens):
        state = (hx[0],)
    else:
        raise ValueError(f"h0 must be (1, {batch}, {net.num_hiddens})")
    output, (H,) = net(x, state)
    return output, H.unsqueeze(0)


implementation = Implementation(
    "seeds:d2l-scratch",
    build,
    Capabilities(
        cells=frozenset({"elman"}),
        max_layers=1,
        bidirectional=False,
        no_bias=False,
        batch_first=False,
        proj_size=False,
        packed=False,
        unbatched=False,
        dropout=False,
    ),
    load_weights=load_weights,
    gradients=gradients,
    call=call,
)
