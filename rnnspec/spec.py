"""Load spec files (TOML data), resolve variants into cells, and validate them.

A spec file describes one cell kind: its gates in canonical stacking order, its state,
its parameters with per-gate block shapes, and its update equations in the notation of
:mod:`rnnspec.notation`. Named variants override parts of it. Validation checks every key
and type, names, shapes and that every gate and state is assigned, generates the code of
every backend once, and reports each problem as one ``file:line:column: message``. Spec
text is data in every field: nothing in it is ever evaluated.
"""

from __future__ import annotations

import hashlib
import keyword
import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rnnspec import codegen, notation
from rnnspec.errors import CodegenError, Location, SpecError, SpecSemanticError, SpecSyntaxError
from rnnspec.model import (
    DIMENSIONS,
    INPUT,
    SPECS_DIR,
    Cell,
    Composition,
    Equation,
    Parameter,
    Shape,
    Spec,
    State,
    TorchEquivalent,
)
from rnnspec.notation import BinOp, Block, Call, Expr, Name, Neg, Number

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_SPEC_BYTES = 256 * 1024
MAX_TEXT_LENGTH = 1000  # title, summary, symbol
# Names become identifiers of the generated code, kinds and variants also its files and
# functions: ASCII only, so that no two spellings (NFKC) name the same variable, and no
# leading underscore (no dunders).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


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
    """Make a user's spec resolvable by kind name (``--spec FILE`` does this).

    Registering the same kind again is fine with the same content, refused with another.
    """
    known = all_specs().get(spec.kind)
    if known is not None and known.digest != spec.digest:
        where = (
            "a shipped spec" if spec.kind in shipped_specs() else f"registered from {known.path}"
        )
        raise SpecSemanticError(
            f"{spec.path}: kind {spec.kind!r} is already {where}, with different content"
        )
    _registered.setdefault(spec.kind, spec)
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


def cell_names() -> list[str]:
    """Every known cell by name (``lstm``, ``gru:reset_before``, ...): the shipped specs'
    cells, then those of the specs registered with :func:`register`."""
    return [cell.name for loaded in all_specs().values() for cell in loaded.cells.values()]


def resolve(name: str) -> Cell:
    """``"lstm"``, ``"gru:reset_before"`` or a path to a spec file, to a cell."""
    kind, _, variant = name.partition(":")
    specs = all_specs()
    if kind.endswith(".toml"):
        spec = _load_unchanged(kind)
    elif kind in specs:
        spec = specs[kind]
    else:
        raise SpecSemanticError(f"unknown cell kind {kind!r} (known: {', '.join(sorted(specs))})")
    return spec.cell(variant or None)


def _load_unchanged(path: str) -> Spec:
    """:func:`load`, reused while the file is unchanged: a cell named by its file is
    resolved once per case."""
    try:
        status = os.stat(path)
    except OSError:
        return load(path)
    return _load_cached(path, status.st_ino, status.st_mtime_ns, status.st_size)


@lru_cache(maxsize=16)
def _load_cached(path: str, *stamp: int) -> Spec:
    return load(path)


def supports_proj(name: str) -> bool:
    """Whether the cell ``name`` (as for :func:`resolve`) has a projection (``proj_size``)."""
    return resolve(name).supports_proj


def load(path: Path | str) -> Spec:
    """Load and validate a spec file; every problem is one :class:`SpecError`."""
    path = Path(path)
    return loads(_read(path), path)


def loads(text: str, path: Path | str = "<spec>") -> Spec:
    """Parse, validate and trial-generate a spec; its text is data, never evaluated."""
    path = Path(path)
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec is longer than {MAX_SPEC_BYTES} characters")
    data = _parse_toml(text, path)
    digest = hashlib.sha256(text.encode()).hexdigest()
    source = _Source(text, path)
    _check_schema(data, source)
    cell_table = _table(data, "cell", source)
    kind = _required(cell_table, "name", str, source, "cell")
    base_variant = cell_table.get("variant", "default")
    base = _build_cell(data, kind, base_variant, True, source, digest)
    cells = {base_variant: base}
    for variant, overrides in _table(data, "variants", source, required=False).items():
        merged = _merge_variant(data, overrides)
        cells[variant] = _build_cell(merged, kind, variant, False, source, digest)
    loaded = Spec(kind, path, digest, base_variant, cells)
    _check_generates(loaded, source)
    return loaded


def _read(path: Path) -> str:
    """The text of a regular file of at most MAX_SPEC_BYTES, checked before reading it."""

    def refuse(reason: str) -> SpecError:
        return SpecError(f"cannot read spec file {path}: {reason}")

    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block
    except OSError as error:
        raise refuse(error.strerror or str(error)) from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise refuse("not a regular file")
        if status.st_size > MAX_SPEC_BYTES:
            raise refuse(f"{status.st_size} bytes, more than the limit of {MAX_SPEC_BYTES}")
        data = os.read(descriptor, MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise refuse(error.strerror or str(error)) from None
    finally:
        os.close(descriptor)
    if len(data) > MAX_SPEC_BYTES:
        raise refuse(f"more than the limit of {MAX_SPEC_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise refuse(f"not UTF-8 text (byte {error.start})") from None


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

    def locate_key(self, key: str, table: str = "") -> Location:
        """The line that sets ``key`` (the first after table ``[table]``'s header, if given)."""
        start = 0
        if table:
            header = re.search(rf"^[ \t]*\[[ \t]*{re.escape(table)}[ \t]*\]", self.text, re.M)
            start = header.end() if header else 0
        pattern = re.compile(rf"^[ \t]*\[?{re.escape(key)}\b", re.MULTILINE)
        match = pattern.search(self.text, start) or pattern.search(self.text)
        index = match.start() if match else self.text.find(key)
        if index < 0:
            return Location(self.path, 1, 1)
        return Location(self.path, self.text.count("\n", 0, index) + 1, 1)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise SpecSyntaxError("invalid TOML: nested too deeply", Location(path, 1, 1)) from None
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


# The keys each table may hold and their TOML types; anything else is refused.
_CELL_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "variant": str,
    "title": str,
    "summary": str,
    "gates": list,
    "output": str,
    "torch": dict,
}
_SCHEMAS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "": {"cell": dict, "state": dict, "parameters": dict, "equations": dict, "variants": dict},
    "cell": _CELL_KEYS,
    "variant": {
        "cell": dict,
        "torch": dict,
        "summary": str,
        "gates": list,
        "parameters": dict,
        "state": dict,
        "equations": dict,
    },
    "variant cell": {
        key: kind for key, kind in _CELL_KEYS.items() if key not in ("name", "variant")
    },
    "torch": {"module": str, "nonlinearity": str},
    "state": {"size": str, "projection": str},
    "parameter": {
        "blocks": (str, list),
        "shape": list,
        "bias": bool,
        "optional": str,
        "symbol": str,
    },
}
_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    list: "an array",
    dict: "a table",
    bool: "true or false",
}


def _check_schema(data: Mapping[str, Any], source: _Source) -> None:
    """Every key known and every value of its type, before anything reads them."""
    _check_table(data, "", "", source)
    for name, table in data.get("state", {}).items():
        _check_table(table, "state", f"state.{name}", source)
    for name, table in data.get("parameters", {}).items():
        _check_parameter(table, f"parameters.{name}", source)
    _check_equations(data.get("equations", {}), "equations", source)
    cell = data.get("cell", {})
    _check_table(cell, "cell", "cell", source)
    _check_table(cell.get("torch", {}), "torch", "cell.torch", source)
    for variant, overrides in data.get("variants", {}).items():
        where = f"variants.{variant}"
        _check_table(overrides, "variant", where, source)
        _check_table(overrides.get("cell", {}), "variant cell", f"{where}.cell", source)
        torch_tables = (overrides.get("torch", {}), overrides.get("cell", {}).get("torch", {}))
        for torch_table in torch_tables:
            _check_table(torch_table, "torch", f"{where}.torch", source)
        for name, table in overrides.get("state", {}).items():
            _check_table(table, "state", f"{where}.state.{name}", source)
        for name, table in overrides.get("parameters", {}).items():
            _check_parameter(table, f"{where}.parameters.{name}", source)
        _check_equations(overrides.get("equations", {}), f"{where}.equations", source)


def _check_table(value: Any, schema: str, where: str, source: _Source) -> None:
    label = f"[{where}]" if where else "the top level"
    if not isinstance(value, dict):
        parent, _, key = where.rpartition(".")
        raise SpecSemanticError(
            f"{label} must be a table, got {_type_name(value)}", source.locate_key(key, parent)
        )
    keys = _SCHEMAS[schema]
    for key, item in value.items():
        if key not in keys:
            raise SpecSemanticError(
                f"unknown key {key!r} in {label} (known: {', '.join(keys)})",
                source.locate_key(key, where),
            )
        allowed = keys[key]
        kinds = allowed if isinstance(allowed, tuple) else (allowed,)
        if not isinstance(item, kinds):
            expected = " or ".join(_TYPE_NAMES[kind] for kind in kinds)
            raise SpecSemanticError(
                f"{label} {key} must be {expected}, got {_type_name(item)}",
                source.locate_key(key, where),
            )
        if isinstance(item, list) and not all(isinstance(entry, str) for entry in item):
            raise SpecSemanticError(
                f"{label} {key} must be an array of strings, got {item!r:.80}",
                source.locate_key(key, where),
            )
        if isinstance(item, str) and key in ("title", "summary", "symbol"):
            _check_text(item, f"{label} {key}", source.locate_key(key, where))


def _check_parameter(table: Any, where: str, source: _Source) -> None:
    _check_table(table, "parameter", where, source)
    if isinstance(table.get("blocks"), str) and table["blocks"] != "gates":
        raise SpecSemanticError(
            f'[{where}] blocks must be "gates" or an array of gate names, '
            f"got {table['blocks']!r:.80}",
            source.locate_key("blocks", where),
        )


def _check_equations(table: Any, where: str, source: _Source) -> None:
    if not isinstance(table, dict):
        raise SpecSemanticError(
            f"[{where}] must be a table, got {_type_name(table)}", source.locate_key(where)
        )
    for target, text in table.items():
        if not isinstance(text, str):
            raise SpecSemanticError(
                f"equation for {target!r} must be a string, got {_type_name(text)}",
                source.locate_key(target),
            )


def _check_text(text: str, what: str, where: Location) -> None:
    if len(text) > MAX_TEXT_LENGTH:
        raise SpecSemanticError(f"{what} is longer than {MAX_TEXT_LENGTH} characters", where)
    unprintable = next((char for char in text if not char.isprintable() and char != "\n"), None)
    if unprintable is not None:
        raise SpecSemanticError(f"{what} holds the control character {unprintable!r}", where)


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


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
    repeated = next((gate for gate in gates if gates.count(gate) > 1), None)
    if repeated is not None:
        raise SpecSemanticError(f"gate {repeated!r} is listed twice", source.locate_key("gates"))
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
    if torch_table is not None and "module" not in torch_table:
        raise SpecSemanticError("[cell] torch needs 'module'", source.locate_key("torch"))
    torch_equivalent = TorchEquivalent(**torch_table) if torch_table is not None else None
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


def _declared_names(cell: Cell, source: _Source) -> list[tuple[str, str, Location]]:
    """Every name the spec gives, what it names and where it is written."""
    variant_at = source.locate(cell.variant, "[cell]" if cell.is_base else "[variants")
    return [
        ("kind", cell.kind, source.locate(cell.kind, "[cell]")),
        ("variant", cell.variant, variant_at),
        *(("gate", name, source.locate(name, "gates")) for name in cell.gates),
        *(("state", s.name, source.locate_key(f"state.{s.name}")) for s in cell.states),
        *(
            ("parameter", p.name, source.locate_key(f"parameters.{p.name}"))
            for p in cell.parameters
        ),
        *(("equation target", eq.target, eq.location) for eq in cell.equations),
    ]


def _validate_names(cell: Cell, source: _Source) -> None:
    """Every name becomes an identifier of the generated code (see ``_NAME``)."""
    for what, name, where in _declared_names(cell, source):
        if not _NAME.match(name) or keyword.iskeyword(name):
            owner = "" if what in ("kind", "variant") else f"{cell.name}: "
            raise SpecSemanticError(
                f"{owner}{what} {name!r:.80} is not a valid name "
                "(an ASCII letter, then letters, digits or _; not a Python keyword)",
                where,
            )


def _check_generates(loaded: Spec, source: _Source) -> None:
    """Generate the code of every backend now: a name it cannot use is refused at load."""
    for cell in loaded.cells.values():
        for what, name in codegen.collisions(cell):
            where = next(
                (at for _, declared, at in _declared_names(cell, source) if declared == name),
                Location(source.path, 1, 1),
            )
            raise SpecSemanticError(
                f"{cell.name}: {what} {name!r} collides with a name the generated code uses; "
                "rename it",
                where,
            )
    for backend in codegen.BACKENDS:
        try:
            codegen.generate_module(loaded, backend)
        except CodegenError as error:
            message = f"cannot generate the {backend} reference: {error}"
            raise SpecSemanticError(message, Location(source.path, 1, 1)) from None


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
