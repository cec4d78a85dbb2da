"""The spec model: what a loaded spec is (cells, their parameters, states, equations).

:mod:`rnnspec.spec` builds these from TOML and :mod:`rnnspec.codegen` builds code from them;
both import this module, and it imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rnnspec import notation
from rnnspec.errors import Location, SpecSemanticError
from rnnspec.notation import Expr

SPECS_DIR = Path(__file__).parent / "specs"
DIMENSIONS = ("input", "hidden", "proj")
INPUT = "x"
Shape = tuple[str, ...]


@dataclass(frozen=True)
class Parameter:
    """A learned tensor. Stacked parameters hold one block per name in ``blocks``."""

    name: str
    blocks: tuple[str, ...]
    block_shape: Shape
    bias: bool = False
    optional: str | None = None
    symbol: str = ""

    @property
    def stacked(self) -> bool:
        return bool(self.blocks)

    def shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        dims = [sizes[dim] for dim in self.block_shape]
        if self.stacked:
            dims[0] *= len(self.blocks)
        return tuple(dims)


@dataclass(frozen=True)
class State:
    """A recurrent state variable; ``projection`` maps it to the stored (proj) size."""

    name: str
    size: str
    projection: str | None = None

    @property
    def stored_size(self) -> str:
        return "proj" if self.projection else self.size


@dataclass(frozen=True)
class Equation:
    target: str
    expr: Expr
    source: str
    location: Location
    offsets: Mapping[Expr, int] = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class TorchEquivalent:
    """The ``torch.nn`` module that computes this cell, if any."""

    module: str
    nonlinearity: str | None = None


@dataclass(frozen=True)
class Cell:
    """One fully resolved cell: a spec with one of its variants applied."""

    kind: str
    variant: str
    is_base: bool
    title: str
    summary: str
    gates: tuple[str, ...]
    states: tuple[State, ...]
    parameters: tuple[Parameter, ...]
    equations: tuple[Equation, ...]
    output: str
    torch: TorchEquivalent | None
    path: Path
    digest: str

    @property
    def name(self) -> str:
        return self.kind if self.is_base else f"{self.kind}:{self.variant}"

    @property
    def function_name(self) -> str:
        return self.kind if self.is_base else f"{self.kind}_{self.variant}"

    def state(self, name: str) -> State:
        return next(state for state in self.states if state.name == name)

    def parameter(self, name: str) -> Parameter:
        return next(param for param in self.parameters if param.name == name)

    def active_parameters(self, *, bias: bool, proj: bool) -> tuple[Parameter, ...]:
        """The parameters a layer has for the given ``bias`` and ``proj_size > 0`` flags."""
        return tuple(
            param
            for param in self.parameters
            if (bias or not param.bias) and (param.optional != "proj" or proj)
        )

    @property
    def supports_proj(self) -> bool:
        return any(state.projection for state in self.states)


@dataclass(frozen=True)
class Spec:
    """A spec file: a base cell and its named variants."""

    kind: str
    path: Path
    digest: str
    base_variant: str
    cells: Mapping[str, Cell]

    def cell(self, variant: str | None = None) -> Cell:
        key = variant or self.base_variant
        if key not in self.cells:
            known = ", ".join(self.cells)
            raise SpecSemanticError(f"spec {self.kind!r} has no variant {key!r} (known: {known})")
        return self.cells[key]


@dataclass(frozen=True)
class Composition:
    """How cells compose into networks, from ``specs/composition.toml``."""

    path: Path
    state_index: Expr
    state_index_source: str
    rules: Mapping[str, str]

    def index(self, layer: int, direction: int, num_directions: int) -> int:
        values = {"layer": layer, "direction": direction, "num_directions": num_directions}
        return int(notation.evaluate(self.state_index, values))
