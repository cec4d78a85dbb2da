"""Load spec files (TOML data), resolve variants into cells, and validate them.

A spec file describes one cell kind: its gates in canonical stacking order, its state,
its parameters with per-gate block shapes, and its update equations in the notation of
:mod:`rnnspec.notation`. Named variants override parts of it. Validation checks names,
shapes and that every gate and state is assigned, and reports ``file:line:column``.
"""

from __future__ import annotations

import hashlib
import keyword
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from rnnspec import notation
from rnnspec.errors import Location, SpecError, SpecSemanticError, SpecSyntaxError
from rnnspec.notation import BinOp, Block, Call, Expr, Name, Neg, Number

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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


def shipped_spec_paths() -> list[Path]:
    return sorted(
        path for path in SPECS_DIR.glob("*.toml") if path.stem not in ("composition", "hypotheses")
    )


@cache
def shipped_specs() -> dict[str, Spec]:
    specs = [load(path) for path in shipped_spec_paths()]
    return {spec.kind: spec for spec in specs}


_registered: dict[str, Spec] = {}


def register(spec: Spec) -> Spec:
    """Make a user's spec resolvable by kind name (``--spec FILE`` does this)."""
    if spec.kind in shipped_specs() and shipped_specs()[spec.kind].digest != spec.digest:
        raise SpecSemanticError(f"{spec.path}: kind {spec.kind!r} is already a shipped spec")
    _registered[spec.kind] = spec
    return spec


@contextmanager
def isolated_registry() -> Iterator[None]:
    """Undo every :func:`register` made inside the block."""
    before = dict(_registered)
    try:
        yield
    finally:
        _registered.clear()
        _registered.update(before)


def all_specs() -> dict[str, Spec]:
    return {**shipped_specs(), **_registered}


def resolve(name: str) -> Cell:
    """``"lstm"``, ``"gru:reset_before"`` or a path to a spec file, to a cell."""
    kind, _, variant = name.partition(":")
    specs = all_specs()
    if kind.endswith(".toml"):
        spec = load(Path(kind))
    elif kind in specs:
        spec = specs[kind]
    else:
        raise SpecSemanticError(f"unknown cell kind {kind!r} (known: {', '.join(sorted(specs))})")
    return spec.cell(variant or None)


def supports_proj(name: str) -> bool:
    """Whether the cell ``name`` (as for :func:`resolve`) has a projection (``proj_size``)."""
    return resolve(name).supports_proj


def load(path: Path | str) -> Spec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read spec file {path}: {error}") from None
    return loads(text, path)


def loads(text: str, path: Path | str = "<spec>") -> Spec:
    path = Path(path)
    data = _parse_toml(text, path)
    digest = hashlib.sha256(text.encode()).hexdigest()
    source = _Source(text, path)
    cell_table = _table(data, "cell", source)
    kind = _required(cell_table, "name", str, source, "cell")
    base_variant = cell_table.get("variant", "default")
    base = _build_cell(data, kind, base_variant, True, source, digest)
    cells = {base_variant: base}
    for variant, overrides in _table(data, "variants", source, required=False).items():
        merged = _merge_variant(data, overrides)
        cells[variant] = _build_cell(merged, kind, variant, False, source, digest)
    return Spec(kind, path, digest, base_variant, cells)


@cache
def composition() -> Composition:
    path = SPECS_DIR / "composition.toml"
    text = path.read_text(encoding="utf-8")
    source = _Source(text, path)
    table = _table(_parse_toml(text, path), "composition", source)
    formula = _required(table, "state_index", str, source, "composition")
    parsed = notation.parse(formula, source.locate(formula))
    rules = {key: value for key, value in table.items() if key != "state_index"}
    return Composition(path, parsed.expr, formula, rules)


class _Source:
    """The spec text, to turn a string value back into a file location."""

    def __init__(self, text: str, path: Path) -> None:
        self.text = text
        self.path = path

    def locate(self, value: str, after: str = "") -> Location:
        start = self.text.find(after) if after else 0
        for quote in ('"', "'"):
            index = self.text.find(f"{quote}{value}{quote}", max(start, 0))
            if index >= 0:
                line = self.text.count("\n", 0, index) + 1
                column = index - (self.text.rfind("\n", 0, index) + 1) + 2
                return Location(self.path, line, column)
        index = self.text.find(value, max(start, 0))  # in a multi-line string
        if value and index >= 0:
            line = self.text.count("\n", 0, index) + 1
            return Location(self.path, line, index - self.text.rfind("\n", 0, index))
        return Location(self.path, 1, 1)

    def locate_key(self, key: str) -> Location:
        match = re.search(rf"^[ \t]*\[?{re.escape(key)}\b", self.text, re.MULTILINE)
        if not match:
            return Location(self.path, 1, 1)
        line = self.text.count("\n", 0, match.start()) + 1
        return Location(self.path, line, 1)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line, column = (int(match[1]), int(match[2])) if match else (1, 1)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise SpecSyntaxError(f"invalid TOML: {reason}", Location(path, line, column)) from None


def _table(
    data: Mapping[str, Any], key: str, source: _Source, required: bool = True
) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise SpecSemanticError(f"missing table [{key}]", source.locate_key(key))
    return value


def _required(table: Mapping[str, Any], key: str, kind: type, source: _Source, where: str) -> Any:
    value = table.get(key)
    if not isinstance(value, kind):
        raise SpecSemanticError(
            f"[{where}] needs {key!r} of type {kind.__name__}", source.locate_key(where)
        )
    return value


def _merge_variant(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(data)
    merged["cell"] = {**data["cell"], **overrides.get("cell", {})}
    merged["cell"].pop("torch", None)
    if "torch" in overrides:
        merged["cell"]["torch"] = overrides["torch"]
    for key in ("summary", "gates"):
        if key in overrides:
            merged["cell"][key] = overrides[key]
    merged["parameters"] = {**data.get("parameters", {}), **overrides.get("parameters", {})}
    merged["state"] = {**data.get("state", {}), **overrides.get("state", {})}
    merged["equations"] = {**data.get("equations", {}), **overrides.get("equations", {})}
    merged["_variant_equations"] = overrides.get("equations", {})
    return merged


def _build_cell(
    data: Mapping[str, Any],
    kind: str,
    variant: str,
    is_base: bool,
    source: _Source,
    digest: str,
) -> Cell:
    cell = data["cell"]
    gates = tuple(cell.get("gates", ()))
    if not gates or not all(isinstance(gate, str) for gate in gates):
        raise SpecSemanticError("[cell] needs a non-empty list 'gates'", source.locate_key("cell"))
    states = tuple(
        _state(name, table, source) for name, table in _table(data, "state", source).items()
    )
    parameters = tuple(
        _parameter(name, table, gates, source)
        for name, table in _table(data, "parameters", source).items()
    )
    variant_marker = "" if is_base else f"[variants.{variant}"
    variant_equations = data.get("_variant_equations", {})
    equations = []
    for target, text in _table(data, "equations", source).items():
        if not isinstance(text, str):
            raise SpecSemanticError(
                f"equation for {target!r} must be a string", source.locate_key(target)
            )
        after = variant_marker if target in variant_equations else "[equations]"
        location = source.locate(text, after)
        parsed = notation.parse(text, location)
        equations.append(Equation(target, parsed.expr, text, location, parsed.offsets))
    torch_table = cell.get("torch")
    torch_equivalent = TorchEquivalent(**torch_table) if isinstance(torch_table, dict) else None
    result = Cell(
        kind=kind,
        variant=variant,
        is_base=is_base,
        title=cell.get("title", kind),
        summary=cell.get("summary", ""),
        gates=gates,
        states=states,
        parameters=parameters,
        equations=tuple(equations),
        output=cell.get("output", states[0].name if states else ""),
        torch=torch_equivalent,
        path=source.path,
        digest=digest,
    )
    _validate(result, source)
    return result


def _state(name: str, table: Mapping[str, Any], source: _Source) -> State:
    size = table.get("size")
    if size not in DIMENSIONS:
        raise SpecSemanticError(
            f"state {name!r} needs size one of {DIMENSIONS}, got {size!r}",
            source.locate_key(f"state.{name}"),
        )
    return State(name, size, table.get("projection"))


def _parameter(
    name: str, table: Mapping[str, Any], gates: tuple[str, ...], source: _Source
) -> Parameter:
    where = source.locate_key(f"parameters.{name}")
    blocks_value = table.get("blocks", ())
    blocks = gates if blocks_value == "gates" else tuple(blocks_value)
    shape = tuple(table.get("shape", ()))
    if not shape or any(dim not in DIMENSIONS for dim in shape) or len(shape) > 2:
        raise SpecSemanticError(
            f"parameter {name!r} needs 'shape': one or two of {DIMENSIONS}, got {list(shape)}",
            where,
        )
    unknown_blocks = [block for block in blocks if block not in gates]
    if unknown_blocks:
        raise SpecSemanticError(
            f"parameter {name!r} has blocks {unknown_blocks} that are not gates", where
        )
    optional = table.get("optional")
    if optional not in (None, "proj"):
        raise SpecSemanticError(
            f"parameter {name!r}: optional must be 'proj', got {optional!r}", where
        )
    return Parameter(
        name, blocks, shape, bool(table.get("bias", False)), optional, table.get("symbol", "")
    )


def _validate(cell: Cell, source: _Source) -> None:
    _validate_names(cell, source)
    shapes: dict[str, Shape] = {INPUT: ("input",)}
    shapes.update({state.name: (state.stored_size,) for state in cell.states})
    params = {param.name: param for param in cell.parameters}
    reserved = {INPUT, *params}
    used: set[str] = set()
    assigned: set[str] = set()
    for equation in cell.equations:

        def fail(
            message: str, node: Expr | None = None, eq: Equation = equation
        ) -> SpecSemanticError:
            offset = eq.offsets.get(node, 0) if node is not None else 0
            where = notation.position(eq.location, eq.source, offset)
            return SpecSemanticError(
                f"{cell.name}: {eq.target} = {' '.join(eq.source.split())}: {message}", where
            )

        if equation.target in reserved:
            raise fail(f"cannot assign to {equation.target!r}: it is an input or a parameter")
        shape = _infer(equation.expr, shapes, params, fail)
        if len(shape) != 1:
            raise fail(f"the result must be a vector, got shape {shape}")
        if equation.target in {state.name for state in cell.states}:
            state = cell.state(equation.target)
            if shape != (state.size,):
                raise fail(
                    f"state {state.name!r} has size {state.size!r}, the equation gives {shape[0]!r}"
                )
        shapes[equation.target] = shape
        assigned.add(equation.target)
        used.update(
            node.param if isinstance(node, Block) else node.id
            for node in notation.names(equation.expr)
        )
    where = source.locate_key("equations")
    for name in (*cell.gates, *(state.name for state in cell.states)):
        if name not in assigned:
            what = "gate" if name in cell.gates else "state"
            raise SpecSemanticError(f"{cell.name}: {what} {name!r} is never updated", where)
    projections = {state.projection for state in cell.states if state.projection}
    for name in params:
        if name not in used and name not in projections:
            raise SpecSemanticError(
                f"{cell.name}: parameter {name!r} is never used",
                source.locate_key(f"parameters.{name}"),
            )
    for state in cell.states:
        if state.projection:
            param = params.get(state.projection)
            if (
                param is None
                or param.block_shape != ("proj", state.size)
                or param.optional != "proj"
            ):
                raise SpecSemanticError(
                    f"{cell.name}: projection of {state.name!r} needs an optional='proj' parameter "
                    f"{state.projection!r} of shape ['proj', {state.size!r}]",
                    where,
                )
    if INPUT not in used:
        raise SpecSemanticError(f"{cell.name}: the input {INPUT!r} is never used", where)
    if cell.output not in {state.name for state in cell.states}:
        raise SpecSemanticError(f"{cell.name}: output {cell.output!r} is not a state", where)


def _validate_names(cell: Cell, source: _Source) -> None:
    """Every name becomes a variable of the generated code: a Python identifier, not a keyword."""
    declared = [
        *(("gate", name, source.locate(name, "gates")) for name in cell.gates),
        *(("state", s.name, source.locate_key(f"state.{s.name}")) for s in cell.states),
        *(
            ("parameter", p.name, source.locate_key(f"parameters.{p.name}"))
            for p in cell.parameters
        ),
        *(("equation target", eq.target, eq.location) for eq in cell.equations),
    ]
    for what, name, where in declared:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise SpecSemanticError(
                f"{cell.name}: {what} {name!r} is not a valid name (an identifier, not a keyword)",
                where,
            )


def _infer(
    expr: Expr, shapes: Mapping[str, Shape], params: Mapping[str, Parameter], fail: Any
) -> Shape:
    def infer(node: Expr) -> Shape:
        return _infer(node, shapes, params, fail)

    if isinstance(expr, Number):
        return ()
    if isinstance(expr, Name):
        if expr.id in params:
            param = params[expr.id]
            if len(param.blocks) > 1:
                raise fail(
                    f"{expr.id!r} is stacked; index it by gate, e.g. {expr.id}[{param.blocks[0]}]",
                    expr,
                )
            return param.block_shape
        if expr.id not in shapes:
            raise fail(f"unknown symbol {expr.id!r} (or used before it is assigned)", expr)
        return shapes[expr.id]
    if isinstance(expr, Block):
        stacked = params.get(expr.param)
        if stacked is None:
            raise fail(f"unknown parameter {expr.param!r}", expr)
        if expr.gate not in stacked.blocks:
            raise fail(
                f"{expr.param!r} has no block {expr.gate!r} (blocks: {', '.join(stacked.blocks)})",
                expr,
            )
        return stacked.block_shape
    if isinstance(expr, Neg):
        return infer(expr.operand)
    if isinstance(expr, Call):
        if len(expr.args) != 1:
            raise fail(f"{expr.func}() takes one argument", expr)
        return infer(expr.args[0])
    if isinstance(expr, BinOp):
        left, right = infer(expr.left), infer(expr.right)
        if expr.op == "@":
            if len(left) != 2 or len(right) != 1 or left[1] != right[0]:
                raise fail(f"shapes do not agree for @: {left} @ {right}", expr)
            return left[:1]
        if left and right and left != right:
            raise fail(f"shapes do not agree for {expr.op}: {left} {expr.op} {right}", expr)
        return left or right
    raise fail(f"unsupported node {expr!r}", expr)
