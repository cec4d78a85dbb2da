"""What ``torch.nn`` computes of the specs, read from each cell's ``torch`` table only.

A cell whose spec says ``torch = { module = "RNN", nonlinearity = "relu" }`` (a shipped
spec or a user's registered one) is computed by ``torch.nn.RNN(..., nonlinearity="relu")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rnnspec import spec
from rnnspec.config import RNNConfig
from rnnspec.errors import ConfigError
from rnnspec.model import TorchEquivalent

MODULES = ("RNN", "GRU", "LSTM")


def cells() -> frozenset[str]:
    """The cell names (``"elman:relu"``) with a ``torch.nn`` equivalent, user specs included."""
    return frozenset(name for name, _ in _equivalents())


def kwargs(config: RNNConfig) -> dict[str, Any]:
    """``config`` as constructor arguments in ``torch.nn.RNNBase``'s convention."""
    result: dict[str, Any] = dict(
        input_size=config.input_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        bias=config.bias,
        batch_first=config.batch_first,
        dropout=config.dropout,
        bidirectional=config.bidirectional,
    )
    if config.proj_size:
        result["proj_size"] = config.proj_size
    nonlinearity = _equivalent(config).nonlinearity
    if nonlinearity is not None:
        result["nonlinearity"] = nonlinearity
    return result


def module_class(name: str) -> Any:
    """The ``torch.nn`` class a ``torch`` table names (``"LSTM"``: ``torch.nn.LSTM``)."""
    if name not in MODULES:
        raise ConfigError(f"torch module {name!r} is not one of torch.nn.{', '.join(MODULES)}")
    from torch import nn

    return getattr(nn, name)


def module(config: RNNConfig, device: Any = None, dtype: Any = None) -> Any:
    """The ``torch.nn`` module that computes ``config``; ConfigError when none does."""
    return module_class(_equivalent(config).module)(**kwargs(config), device=device, dtype=dtype)


def cell_of(module: Any) -> str:
    """The cell a ``torch.nn`` module computes: the first whose ``torch`` table matches it,
    shipped specs first."""
    nonlinearity = getattr(module, "nonlinearity", None)
    for name, equivalent in _equivalents():
        if (
            equivalent.module in MODULES
            and isinstance(module, module_class(equivalent.module))
            and equivalent.nonlinearity == nonlinearity
        ):
            return name
    raise ConfigError(f"no spec names {type(module).__name__} (nonlinearity={nonlinearity})")


def _equivalent(config: RNNConfig) -> TorchEquivalent:
    equivalent = config.resolve().torch
    if equivalent is None:
        raise ConfigError(f"{config.cell} has no torch.nn equivalent")
    return equivalent


def _equivalents() -> Iterator[tuple[str, TorchEquivalent]]:
    for loaded in spec.all_specs().values():
        for cell in loaded.cells.values():
            if cell.torch is not None:
                yield cell.name, cell.torch
