"""The two built-in implementations: PyTorch's own modules and the generated reference."""

from __future__ import annotations

from typing import Any

from rnnspec import torch_equivalents
from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


def _reference_factory(config: RNNConfig, device: Any, dtype: Any) -> Any:
    from reference.nn import RNN

    return RNN(config, device=device, dtype=dtype)


def torch_nn() -> Implementation:
    """``torch.nn.RNN``, ``GRU`` and ``LSTM``, for every cell whose spec names one."""
    return Implementation(
        "torch",
        torch_equivalents.module,
        Capabilities(cells=torch_equivalents.cells()),
        description="PyTorch's own kernels: torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM",
    )


def reference() -> Implementation:
    """The PyTorch reference generated from the specs, every cell and variant."""
    return Implementation(
        "reference",
        _reference_factory,
        Capabilities(cells=frozenset({"*"})),
        description="rnnspec's generated PyTorch reference (reference.nn.RNN)",
    )
