"""The two built-in implementations: PyTorch's own modules and the generated reference."""

from __future__ import annotations

from typing import Any

from rnnspec import torch_equivalents
from rnnspec.config import RNNConfig
from rnnspec.protocol import ALL_TRANSFORMS, Capabilities, Implementation

# torch 2.13 (README, findings): no vmap batching rule for aten::rnn_tanh, rnn_relu, gru or
# lstm; no forward-mode AD through the float32 CPU LSTM (oneDNN's mkldnn_rnn_layer)
TORCH_NN_TRANSFORMS = ALL_TRANSFORMS - {"vmap", "jvp"}


def _reference_factory(config: RNNConfig, device: Any, dtype: Any) -> Any:
    from reference.nn import RNN

    return RNN(config, device=device, dtype=dtype)


def torch_nn() -> Implementation:
    """``torch.nn.RNN``, ``GRU`` and ``LSTM``, for every cell whose spec names one."""
    return Implementation(
        "torch",
        torch_equivalents.module,
        Capabilities(cells=torch_equivalents.cells(), transforms=TORCH_NN_TRANSFORMS),
        description="PyTorch's own kernels: torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM",
    )


def reference() -> Implementation:
    """The PyTorch reference generated from the specs, every cell and variant."""
    return Implementation(
        "reference",
        _reference_factory,
        # its module keeps an RNNConfig, which TorchScript cannot type
        Capabilities(cells=frozenset({"*"}), transforms=ALL_TRANSFORMS - {"script"}),
        description="rnnspec's generated PyTorch reference (reference.nn.RNN)",
    )
