"""Check cases: a configuration plus the run around it (T, B, dtype, device, packing)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from rnnspec.config import RNNConfig


@dataclass(frozen=True)
class Case:
    """One run of a candidate. ``batch=None`` is unbatched input; ``lengths`` packs it."""

    config: RNNConfig
    steps: int = 5
    batch: int | None = 3
    dtype: str = "float64"
    device: str = "cpu"
    lengths: tuple[int, ...] | None = None
    given_state: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lengths is not None:
            if self.batch is None or len(self.lengths) != self.batch:
                raise ValueError(f"lengths {self.lengths} must give one length per batch entry")
            if max(self.lengths) != self.steps or min(self.lengths) < 1:
                raise ValueError(
                    f"lengths {self.lengths} must lie in [1, T={self.steps}] and reach T"
                )

    @property
    def packed(self) -> bool:
        return self.lengths is not None

    @property
    def unbatched(self) -> bool:
        return self.batch is None

    def replace(self, **changes: Any) -> Case:
        return replace(self, **changes)

    def state_names(self, suffix: str = "_n") -> list[str]:
        """``["h_n", "c_n"]`` for an LSTM (``suffix="0"``: ``["h0", "c0"]``), in state order."""
        return [state.name + suffix for state in self.config.resolve().states]

    def result_names(self) -> list[str]:
        """``["output", "h_n", "c_n"]`` for an LSTM: what a run returns, in order."""
        return ["output", *self.state_names()]

    def label(self) -> str:
        """``lstm I=5 H=4 layers=2 bidirectional T=5 B=3 dtype=float32``: for messages."""
        parts = [self.config.describe(), f"T={self.steps}"]
        parts.append("unbatched" if self.batch is None else f"B={self.batch}")
        if self.lengths is not None:
            parts.append(f"packed lengths={list(self.lengths)}")
        if not self.given_state:
            parts.append("hx=None")
        parts.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            parts.append(f"device={self.device}")
        return " ".join(parts)

    def id(self) -> str:
        """A pytest id: short, unique within one check's parameter list."""
        return (
            self.label()
            .replace(" ", "-")
            .replace("=", "")
            .replace(",", "_")
            .replace("[", "")
            .replace("]", "")
        )


RUN_FIELDS = frozenset(field.name for field in fields(Case)) - {"config"}


def make_case(cell: str, layers: int = 1, bidirectional: bool = False, **given: Any) -> Case:
    """A case from flat fields: :class:`Case`'s (``steps``, ``batch``, ``dtype``, ``lengths``,
    ...) and, for the rest, :class:`RNNConfig`'s (``input_size``, ``batch_first``, ...)."""
    run = {name: given.pop(name) for name in RUN_FIELDS & given.keys()}
    config = RNNConfig(cell=cell, num_layers=layers, bidirectional=bidirectional, **given)
    return Case(config, **run)


def layout_case(
    cell: str,
    layers: int,
    bidirectional: bool,
    layout: str,
    *,
    batch: int,
    lengths: tuple[int, ...],
    **given: Any,
) -> Case:
    """A case in a named layout: ``time-major``, ``batch_first``, ``unbatched``, ``packed``
    or ``packed batch_first``; ``given`` are the other fields, as for :func:`make_case`."""
    return make_case(
        cell,
        layers,
        bidirectional,
        batch_first=layout.endswith("batch_first"),
        batch=None if layout == "unbatched" else batch,
        lengths=lengths if layout.startswith("packed") else None,
        **given,
    )
