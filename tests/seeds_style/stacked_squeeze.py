"""A stacked Elman RNN of RNNCells (``x2h``, ``h2h`` linears) over a ModuleList, batch-first,
with two of the seeds' bugs: the output is ``.squeeze()``d (B = 1, T = 1 or H = 1 lose their
dimension) and the zero state is made with ``torch.zeros(...)`` without ``device=`` (it
stays on the CPU when the input is elsewhere). Broken: shapes, device and robustness catch
it; its numbers are right."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnspec.config import RNNConfig, canonical_name
from rnnspec.protocol import Capabilities, Implementation


class RNNCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, nonlinearity: str) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.nonlinearity = nonlinearity
        self.x2h = nn.Linear(input_size, hidden_size, bias=bias)
        self.h2h = nn.Linear(hidden_size, hidden_size, bias=bias)
        std = 1.0 / np.sqrt(hidden_size)
        for w in self.parameters():
            w.data.uniform_(-std, std)

    def forward(self, input: torch.Tensor, hx: torch.Tensor) -> torch.Tensor:
        hy = self.x2h(input) + self.h2h(hx)
        return torch.tanh(hy) if self.nonlinearity == "tanh" else torch.relu(hy)


class RNN(nn.Module):
    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, bias: bool, activation: str
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.rnn_cell_list = nn.ModuleList(
            [RNNCell(input_size, hidden_size, bias, activation)]
            + [RNNCell(hidden_size, hidden_size, bias, activation) for _ in range(1, num_layers)]
        )

    def forward(self, input: torch.Tensor, hx: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        if hx is None:
            h0 = torch.zeros(self.num_layers, input.size(0), self.hidden_size, dtype=input.dtype)
        else:
            h0 = hx
        outs = []
        hidden = [h0[layer, :, :] for layer in range(self.num_layers)]
        for t in range(input.size(1)):
            for layer in range(self.num_layers):
                if layer == 0:
                    hidden_l = self.rnn_cell_list[layer](input[:, t, :], hidden[layer])
                else:
                    hidden_l = self.rnn_cell_list[layer](hidden[layer - 1], hidden[layer])
                hidden[layer] = hidden_l
            outs.append(hidden_l)
        out = torch.stack(outs, dim=1).squeeze()
        return out, torch.stack(hidden)


# --- the adapter: canonical names onto the cells' linears ----------------------------------


def build(config: RNNConfig, device: Any, dtype: Any) -> RNN:
    activation = "relu" if config.cell == "elman:relu" else "tanh"
    net = RNN(config.input_size, config.hidden_size, config.num_layers, config.bias, activation)
    return net.to(device=device, dtype=dtype)


def _names(net: RNN) -> dict[str, str]:
    """Canonical name: ours, for every parameter the network has."""
    ours = dict(net.named_parameters())
    names = {}
    for layer in range(net.num_layers):
        for canonical, linear in (("ih", "x2h"), ("hh", "h2h")):
            for kind in ("weight", "bias"):
                name = f"rnn_cell_list.{layer}.{linear}.{kind}"
                if name in ours:
                    names[canonical_name(f"{kind}_{canonical}", layer, 0)] = name
    return names


def load_weights(net: RNN, weights: Mapping[str, torch.Tensor]) -> None:
    params = dict(net.named_parameters())
    with torch.no_grad():
        for canonical, ours in _names(net).items():
            params[ours].copy_(weights[canonical])


def gradients(net: RNN) -> dict[str, Any]:
    params = dict(net.named_parameters())
    return {canonical: params[ours].grad for canonical, ours in _names(net).items()}


implementation = Implementation(
    "seeds:stacked-squeeze",
    build,
    Capabilities(
        cells=frozenset({"elman", "elman:relu"}),
        bidirectional=False,
        time_major=False,
        proj_size=False,
        packed=False,
        unbatched=False,
        dropout=False,
    ),
    load_weights=load_weights,
    gradients=gradients,
)
