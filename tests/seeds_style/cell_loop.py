"""A BasicRNNCell stepped by a batch-first loop, one layer, no h0 argument: the zero state
is made inside the loop's owner, ``.to(input_seq)`` so it follows the input's device and
dtype. Correct: it passes every category inside what it declares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

import rnnspec
from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


class BasicRNNCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.W_ih = nn.Parameter(torch.randn(hidden_size, input_size))
        self.b_ih = nn.Parameter(torch.zeros(hidden_size))
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size))
        self.b_hh = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
        hx = torch.matmul(x, self.W_ih.T) + self.b_ih
        hh = torch.matmul(h_prev, self.W_hh.T) + self.b_hh
        return torch.tanh(hx + hh)


class SimpleRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn_cell = BasicRNNCell(input_size, hidden_size)

    def forward(self, input_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_size, seq_length = input_seq.size(0), input_seq.size(1)
        h_prev = torch.zeros(batch_size, self.hidden_size).to(input_seq)
        outputs = []
        for t in range(seq_length):
            h_prev = self.rnn_cell(input_seq[:, t, :], h_prev)
            outputs.append(h_prev.unsqueeze(1))
        return torch.cat(outputs, dim=1), h_prev


# --- the adapter --------------------------------------------------------------------------

NAMES = {  # canonical name: ours
    "weight_ih_l0": "rnn_cell.W_ih",
    "weight_hh_l0": "rnn_cell.W_hh",
    "bias_ih_l0": "rnn_cell.b_ih",
    "bias_hh_l0": "rnn_cell.b_hh",
}


def build(config: RNNConfig, device: Any, dtype: Any) -> SimpleRNN:
    return SimpleRNN(config.input_size, config.hidden_size).to(device=device, dtype=dtype)


def load_weights(net: SimpleRNN, weights: Mapping[str, torch.Tensor]) -> None:
    params = dict(net.named_parameters())
    with torch.no_grad():
        for canonical, ours in NAMES.items():
            params[ours].copy_(weights[canonical])


def gradients(net: SimpleRNN) -> dict[str, Any]:
    params = dict(net.named_parameters())
    return {canonical: params[ours].grad for canonical, ours in NAMES.items()}


def call(net: SimpleRNN, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if hx is not None:
        raise rnnspec.Unsupported("SimpleRNN starts from zeros; it takes no h0")
    if x.dim() != 3:
        raise ValueError(f"SimpleRNN takes (batch, seq, input), got {x.dim()}-D input")
    output, h_n = net(x)
    return output, h_n.unsqueeze(0)


implementation = Implementation(
    "seeds:cell-loop",
    build,
    Capabilities(
        cells=frozenset({"elman"}),
        max_layers=1,
        bidirectional=False,
        no_bias=False,
        time_major=False,
        proj_size=False,
        packed=False,
        unbatched=False,
        initial_state=False,
        dropout=False,
    ),
    load_weights=load_weights,
    gradients=gradients,
    call=call,
)
