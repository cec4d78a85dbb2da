"""The configuration of an RNN network and its canonical (PyTorch) parameter layout."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rnnspec.errors import ConfigError
from rnnspec.spec import Cell, resolve


@dataclass(frozen=True)
class RNNConfig:
    """One network shape. ``cell`` is a kind with an optional variant: ``"gru:reset_before"``."""

    cell: str = "lstm"
    input_size: int = 5
    hidden_size: int = 4
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    batch_first: bool = False
    proj_size: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.input_size < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ConfigError(f"sizes and num_layers must be positive: {self}")
        if self.proj_size < 0 or (self.proj_size and self.proj_size >= self.hidden_size):
            raise ConfigError(
                f"proj_size must be 0 or in [1, hidden_size): got {self.proj_size} with "
                f"hidden_size={self.hidden_size}"
            )
        if not 0.0 <= self.dropout <= 1.0:
            raise ConfigError(f"dropout must be in [0, 1], got {self.dropout}")

    @property
    def kind(self) -> str:
        return self.cell.partition(":")[0]

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def resolve(self) -> Cell:
        cell = resolve(self.cell)
        if self.proj_size and not cell.supports_proj:
            raise ConfigError(f"{cell.name} has no projection; proj_size must be 0")
        return cell

    def replace(self, **changes: Any) -> RNNConfig:
        return replace(self, **changes)

    def describe(self) -> str:
        """A short label, e.g. ``lstm I=5 H=4 layers=2 bidirectional batch_first``."""
        parts = [self.cell, f"I={self.input_size}", f"H={self.hidden_size}"]
        if self.num_layers > 1:
            parts.append(f"layers={self.num_layers}")
        flags = {
            "bidirectional": self.bidirectional,
            "batch_first": self.batch_first,
            "no-bias": not self.bias,
        }
        parts.extend(name for name, on in flags.items() if on)
        if self.proj_size:
            parts.append(f"proj={self.proj_size}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        return " ".join(parts)

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.num_directions * self.output_size

    def sizes(self, layer: int) -> dict[str, int]:
        return {
            "input": self.layer_input_size(layer),
            "hidden": self.hidden_size,
            "proj": self.output_size,
        }

    def state_shapes(self, cell: Cell, batch: int | None) -> list[tuple[int, ...]]:
        """Shapes of h0/c0 (and h_n/c_n): (L*D, B, size), or (L*D, size) when unbatched."""
        stacked = self.num_layers * self.num_directions
        shapes: list[tuple[int, ...]] = []
        for state in cell.states:
            size = self.sizes(0)[state.stored_size]
            shapes.append((stacked, batch, size) if batch is not None else (stacked, size))
        return shapes

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Canonical names and shapes, in PyTorch's order: per layer, per direction."""
        cell = self.resolve()
        active = cell.active_parameters(bias=self.bias, proj=self.proj_size > 0)
        shapes = {}
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                for param in active:
                    shapes[canonical_name(param.name, layer, direction)] = param.shape(
                        self.sizes(layer)
                    )
        return shapes


def canonical_name(param: str, layer: int, direction: int) -> str:
    """PyTorch's parameter name: ``weight_ih_l1_reverse``."""
    return f"{param}_l{layer}{'_reverse' if direction else ''}"
