"""Seed 000's DummyRNN in NumPy: one unbatched sequence, time-major, and no nonlinearity on
the recurrence: the hidden state carried to the next step is the pre-activation, and tanh
is applied only on the read-out. Broken: parity catches it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


class DummyRNN:
    def __init__(self, input_features: int, output_features: int) -> None:
        rng = np.random.default_rng(0)
        self.Whi = rng.random((output_features, output_features))
        self.Wxi = rng.random((output_features, input_features))
        self.Who = rng.random((output_features, output_features))
        self.b1 = rng.random((output_features,))
        self.b2 = rng.random((output_features,))
        self.init_hidden = np.zeros(output_features)

    def forward(self, input_data: np.ndarray) -> np.ndarray:
        hidden_in = self.init_hidden
        memory = []
        for input_t in input_data:
            hidden_activation_t = hidden_in @ self.Whi + self.Wxi @ input_t + self.b1
            output = np.tanh(self.Who @ hidden_activation_t + self.b2)
            memory.append(output)
            hidden_in = hidden_activation_t
        return np.array(memory)


# --- the adapter: the read-out made the identity, so the output is tanh(pre-activation) ---


def build(config: RNNConfig, device: Any, dtype: Any) -> DummyRNN:
    return DummyRNN(config.input_size, config.hidden_size)


def load_weights(net: DummyRNN, weights: Mapping[str, np.ndarray]) -> None:
    dtype = weights["weight_ih_l0"].dtype
    net.Wxi = weights["weight_ih_l0"]
    net.Whi = weights["weight_hh_l0"].T
    net.b1 = weights["bias_ih_l0"] + weights["bias_hh_l0"]
    net.Who = np.eye(len(net.b1), dtype=dtype)
    net.b2 = np.zeros_like(net.b1)
    net.init_hidden = np.zeros_like(net.b1)


def call(net: DummyRNN, x: np.ndarray, hx: Any) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim != 2:
        raise ValueError(f"DummyRNN takes one (time_steps, features) sequence, got {x.ndim}-D")
    output = net.forward(x)
    return output, output[-1:]


implementation = Implementation(
    "seeds:numpy-dummy",
    build,
    Capabilities(
        cells=frozenset({"elman"}),
        max_layers=1,
        bidirectional=False,
        no_bias=False,
        batch_first=False,
        proj_size=False,
        packed=False,
        batched=False,
        initial_state=False,
        dropout=False,
    ),
    load_weights=load_weights,
    call=call,
    framework="numpy",
)
