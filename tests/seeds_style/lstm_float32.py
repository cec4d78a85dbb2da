"""An LSTM computed gate by gate from slices of PyTorch-named weights, batch-first, one
layer; its parameters are made with ``torch.Tensor(...)``, so it computes in float32
whatever it is handed. Declared as float32 only it is correct; ``float64_in_float32``
takes float64 input too, casts it down and back, and declares ``precision="float32"``."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


class LSTMFromScratch(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.Tensor(4 * hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.Tensor(4 * hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.Tensor(4 * hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.Tensor(4 * hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, seq: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if seq.dim() != 3:
            raise ValueError(f"expected (batch, seq, features), got {seq.dim()}-D input")
        size = (1, seq.size(0), self.hidden_size)
        if state is None:
            state = (seq.new_zeros(size), seq.new_zeros(size))
        h_previous, c_previous = state
        if h_previous.shape != size or c_previous.shape != size:
            raise ValueError(f"h0 and c0 must both be {tuple(size)}")
        h_previous, c_previous = h_previous[0], c_previous[0]
        wii, wif, wig, wio = self.weight_ih_l0.chunk(4)
        whi, whf, whg, who = self.weight_hh_l0.chunk(4)
        bii, bif, big, bio = self.bias_ih_l0.chunk(4)
        bhi, bhf, bhg, bho = self.bias_hh_l0.chunk(4)
        outputs = []
        for t in range(seq.size(1)):
            x = seq[:, t]
            i = torch.sigmoid(x @ wii.T + bii + h_previous @ whi.T + bhi)
            f = torch.sigmoid(x @ wif.T + bif + h_previous @ whf.T + bhf)
            g = torch.tanh(x @ wig.T + big + h_previous @ whg.T + bhg)
            o = torch.sigmoid(x @ wio.T + bio + h_previous @ who.T + bho)
            c_previous = f * c_previous + i * g
            h_previous = o * torch.tanh(c_previous)
            outputs.append(h_previous)
        return torch.stack(outputs, dim=1), (h_previous[None], c_previous[None])


def build(config: RNNConfig, device: Any, dtype: Any) -> LSTMFromScratch:
    """float32 whatever ``dtype`` says: it is all this network computes in."""
    return LSTMFromScratch(config.input_size, config.hidden_size).to(device)


def call_cast(net: LSTMFromScratch, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, Any]:
    """float64 input computed in float32, the results cast back to the input's dtype."""
    state = None if hx is None else tuple(s.float() for s in hx)
    output, (h_n, c_n) = net(x.float(), state)
    return output.to(x.dtype), (h_n.to(x.dtype), c_n.to(x.dtype))


implementation = Implementation(
    "seeds:lstm-float32",
    build,
    Capabilities(
        cells=frozenset({"lstm"}),
        max_layers=1,
        bidirectional=False,
        no_bias=False,
        time_major=False,
        proj_size=False,
        packed=False,
        unbatched=False,
        dropout=False,
        dtypes=frozenset({"float32"}),
    ),
)

float64_in_float32 = replace(
    implementation,
    name="seeds:lstm-float64-in-float32",
    call=call_cast,
    capabilities=replace(
        implementation.capabilities, dtypes=frozenset({"float64", "float32"}), precision="float32"
    ),
)
