"""Generate reference layer functions from cells, for the NumPy and PyTorch backends.

Each generated function runs one layer in one direction over a time-major sequence:
the input projection of every time step is one matrix product before the loop; the loop
does the recurrent products (one per distinct operand) and the gate math. Consecutive
gates with the same form are computed in one call and split. The PyTorch backend takes its
products from :mod:`reference.kernels` and fuses ``a + b * c`` and ``a * tanh(b)``.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import groupby
from pathlib import Path
from types import ModuleType

from rnnspec import notation
from rnnspec.errors import CodegenError
from rnnspec.model import DIMENSIONS, INPUT, SPECS_DIR, Cell, Parameter, Spec
from rnnspec.notation import BinOp, Block, Call, Expr, Name, Neg, Number

GENERATOR = "rnnspec.codegen"
BACKENDS = ("numpy", "torch")
RESERVED_LOCALS = frozenset(
    {
        "state",
        "masks",
        "steps",
        "batch",
        "outputs",
        "out",
        "keep",
        "t",
        "gates",
        "gate_scale",
        "grad",
        "kernels",
        "x_proj",
        "x_proj_t",
        "x_t",
        "np",
        "torch",
    }
)
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2}


@dataclass(frozen=True)
class FusedForms:
    """Spellings that save kernel calls, where an array library has them."""

    gates_sigmoid: str  # one in-place sigmoid over every gate; a tanh gate is 2 * sigmoid(2a) - 1
    addcmul: str  # a + b * c
    fold_tanh_gate: str  # a + m * g for such a tanh gate g = 2 * s - 1: (a - m) + 2 * m * s
    times_tanh: str  # a * tanh(b) = a - 2 * a * sigmoid(-2b)


@dataclass(frozen=True)
class Backend:
    """How the generated code spells each primitive in one array library."""

    name: str
    imports: str
    functions: dict[str, str]
    transpose: str
    step_weight: str
    step_weight_name: str
    product: str
    product_add: str
    projection: str
    projection_bias: str
    preamble: str
    split: str
    where: str
    stack: str
    concat: str
    zeros: str
    steps: str
    steps_x: str
    fused: FusedForms | None = None


NUMPY = Backend(
    name="numpy",
    imports="import numpy as np",
    functions={
        "sigmoid": "0.5 * (1.0 + np.tanh(0.5 * ({0})))",
        "tanh": "np.tanh({0})",
        "relu": "np.maximum({0}, 0.0)",
        "hard_sigmoid": "np.clip(0.2 * ({0}) + 0.5, 0.0, 1.0)",
        "identity": "{0}",
    },
    transpose="{0}.T",
    step_weight="{0}.T",
    step_weight_name="{0}_t",
    product="{a} @ {w}",
    product_add="{add} + {a} @ {w}",
    projection="{a} @ {w}.T",
    projection_bias="{bias} + {a} @ {w}.T",
    preamble="",
    split="np.split({0}, {1}, axis=1)",
    where="np.where({0}, {1}, {2})",
    stack="np.stack({0})",
    concat="np.concatenate([{0}])",
    zeros="np.zeros({1}, dtype={0}.dtype)",
    steps="enumerate(x_proj)",
    steps_x="enumerate(x)",
)

TORCH = Backend(
    name="torch",
    imports="import torch\n\nfrom reference import kernels",
    functions={
        "sigmoid": "torch.sigmoid({0})",
        "tanh": "torch.tanh({0})",
        "relu": "torch.relu({0})",
        "hard_sigmoid": "torch.clamp(0.2 * ({0}) + 0.5, 0.0, 1.0)",
        "identity": "{0}",
    },
    transpose="{0}.t()",
    step_weight="kernels.linear({0}, grad, rows=x.shape[1])",
    step_weight_name="times_{0}",
    product="{w}({a})",
    product_add="{w}({a}, {add})",
    projection="kernels.linear({w}, grad, rows=x.shape[0] * x.shape[1])({a})",
    projection_bias="kernels.linear({w}, grad, rows=x.shape[0] * x.shape[1])({a}, {bias})",
    preamble="grad = kernels.needs_grad(x, *state, {0})",
    split="{0}.chunk({1}, 1)",
    where="torch.where({0}, {1}, {2})",
    stack="torch.stack({0})",
    concat="torch.cat([{0}])",
    zeros="{0}.new_zeros({1})",
    steps="enumerate(x_proj.unbind(0))",
    steps_x="enumerate(x.unbind(0))",
    # PyTorch's CPU tanh costs several sigmoids
    fused=FusedForms(
        gates_sigmoid="{0}.sigmoid_()",
        addcmul="torch.addcmul({0}, {1}, {2})",
        fold_tanh_gate="torch.addcmul(torch.sub({0}, {1}), {1}, {2}, value=2)",
        times_tanh="torch.addcmul({0}, {0}, ({1} * -2).sigmoid_(), value=-2)",
    ),
)

BACKEND_BY_NAME = {"numpy": NUMPY, "torch": TORCH}
BUILTINS_USED = frozenset({"enumerate"})


def _imported_names(backend: Backend) -> set[str]:
    return {
        (alias.asname or alias.name).partition(".")[0]
        for node in ast.parse(backend.imports).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


# The globals of a generated module besides its functions (a spec runs on every backend).
MODULE_NAMES = frozenset(
    {"annotations", *BUILTINS_USED}.union(*map(_imported_names, BACKEND_BY_NAME.values()))
)


def collisions(cell: Cell) -> list[tuple[str, str]]:
    """``(what, name)`` for each name of ``cell`` that the generated code needs for itself."""
    params = {param.name for param in cell.parameters}
    states = {state.name for state in cell.states}
    taken = _generated_names(cell) | params
    what = {**dict.fromkeys(cell.gates, "gate"), **dict.fromkeys(states, "state")}
    found = [
        (what.get(eq.target, "equation target"), eq.target)
        for eq in cell.equations
        if eq.target in taken
    ]
    found += [("parameter", name) for name in params if name in _generated_names(cell, name)]
    if cell.function_name in MODULE_NAMES:
        found.append(("kind", cell.kind) if cell.is_base else ("variant", cell.variant))
    return found


def _generated_names(cell: Cell, besides: str | None = None) -> set[str]:
    """Every local the generated function may define besides the equation targets and the
    parameters (and the names derived from parameter ``besides``), and every global it reads."""
    names = set(RESERVED_LOCALS) | set(DIMENSIONS) | MODULE_NAMES
    names |= {f"{state.name}_next" for state in cell.states}
    names |= {_sigmoid_name(gate) for gate in cell.gates}
    for param in cell.parameters:
        if param.name == besides:
            continue
        short = param.name.removeprefix("weight_")
        names |= {short, *(f"{short}_{n}" for n in range(2, 10))}
        names |= {f"{param.name}_{gate}" for gate in param.blocks}
        names |= {
            backend.step_weight_name.format(f"{param.name}{suffix}")
            for backend in BACKEND_BY_NAME.values()  # a spec runs on every backend
            for suffix in [""]
            + [
                "_" + "".join(param.blocks[a:b])
                for a in range(len(param.blocks))
                for b in range(a + 1, len(param.blocks) + 1)
            ]
        }
    return names


def header(spec: Spec, backend: str) -> str:
    return (
        f"# Generated by {GENERATOR} ({backend} backend) from {_escaped(_spec_label(spec))}\n"
        f"# spec sha256: {spec.digest}\n"
        "# Do not edit; regenerate with `rnnspec generate`.\n"
    )


def generate_module(spec: Spec, backend: str) -> str:
    """The source of one module: a layer function for every variant of ``spec``.

    Spec text reaches it only as escaped string literals and checked names, and the result
    is verified statement by statement (:func:`verify_module`) before anyone can run it.
    """
    chosen = BACKEND_BY_NAME[backend]
    functions = [_FunctionWriter(cell, chosen).write() for cell in spec.cells.values()]
    title = spec.cells[spec.base_variant].title
    docstring = f'"""{_escaped(title)}: reference layers ({backend}, generated)."""'
    names = ", ".join(_string(cell.function_name) for cell in spec.cells.values())
    parts = [
        header(spec, backend),
        docstring,
        "",
        "from __future__ import annotations",
        "",
        chosen.imports,
        "",
        f"__all__ = [{names}]",
        "",
        *functions,
    ]
    source = "\n".join(parts).rstrip() + "\n"
    verify_module(source, spec, chosen)
    return source


def load_module(spec: Spec, backend: str) -> ModuleType:
    """Generate and import ``spec``'s module in memory; tracebacks show the generated lines."""
    source = generate_module(spec, backend)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<rnnspec-generated {backend} {_escaped(spec.kind)} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = ModuleType(f"rnnspec_generated_{backend}_{spec.kind}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # verified by generate_module
    return module


def expected_files(specs: dict[str, Spec], root: Path) -> dict[Path, str]:
    """Every file ``rnnspec generate`` writes under ``root`` (the ``reference`` package)."""
    files: dict[Path, str] = {}
    for backend in BACKENDS:
        package = root / backend
        names = ", ".join(_string(kind) for kind in sorted(specs))
        files[package / "__init__.py"] = (
            f"# Generated by {GENERATOR}. Do not edit; regenerate with `rnnspec generate`.\n"
            f'"""Generated {backend} reference layers, one module per cell kind."""\n\n'
            f"KINDS = ({names}{',' if len(specs) == 1 else ''})\n"
        )
        for kind, spec in sorted(specs.items()):
            files[package / f"{kind}.py"] = generate_module(spec, backend)
    return files


def _escaped(text: str) -> str:
    """``text`` for inside a double-quoted string literal or a comment: backslashes and
    double quotes escaped, and every unprintable character (line breaks included)."""
    return "".join(
        "\\" + char if char in '\\"' else char if char.isprintable() else repr(char)[1:-1]
        for char in text
    )


def _string(text: str) -> str:
    return f'"{_escaped(text)}"'


# Defence in depth: what a generated module may contain.
_FUNCTION_NODES = frozenset(
    {
        *(ast.Assign, ast.AugAssign, ast.For, ast.If, ast.Return, ast.Expr, ast.Pass),
        *(ast.Name, ast.Load, ast.Store, ast.Attribute, ast.Call, ast.keyword, ast.Constant),
        *(ast.BinOp, ast.UnaryOp, ast.Compare, ast.Subscript, ast.Slice, ast.Tuple, ast.List),
        *(ast.Starred, ast.arguments, ast.arg, ast.Is, ast.IsNot, ast.USub, ast.UAdd),
        *(ast.Add, ast.Sub, ast.Mult, ast.Div, ast.MatMult, ast.FloorDiv),
    }
)


def verify_module(source: str, spec: Spec, backend: Backend) -> None:
    """Check that ``source`` holds exactly what the generator writes for ``spec``: a
    docstring, the imports of ``backend``, ``__all__`` and one plain function per cell whose
    body uses only whitelisted syntax, its own locals, the imports and ``BUILTINS_USED``."""
    functions = [cell.function_name for cell in spec.cells.values()]

    def fail(reason: str) -> CodegenError:
        return CodegenError(f"generated {backend.name} code for {spec.kind!r:.80}: {reason}")

    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError) as error:
        raise fail(f"does not parse: {error}") from None
    expected = [
        *ast.parse("from __future__ import annotations").body,
        *ast.parse(backend.imports).body,
        ast.Assign(
            [ast.Name("__all__", ast.Store())],
            ast.List([ast.Constant(name) for name in functions], ast.Load()),
        ),
    ]
    head, defs = body[: len(expected) + 1], body[len(expected) + 1 :]
    if not (
        len(head) == len(expected) + 1
        and isinstance(head[0], ast.Expr)
        and isinstance(head[0].value, ast.Constant)
        and isinstance(head[0].value.value, str)
    ):
        raise fail("no module docstring")
    for got, want in zip(head[1:], expected, strict=True):
        if ast.dump(got) != ast.dump(want):
            raise fail(f"unexpected statement at line {got.lineno}: {ast.unparse(got)[:80]}")
    if [node.name if isinstance(node, ast.FunctionDef) else None for node in defs] != functions:
        raise fail(
            f"the top-level statements after __all__ are not exactly def {', '.join(functions)}"
        )
    globals_ = _imported_names(backend) | BUILTINS_USED
    for function in defs:
        assert isinstance(function, ast.FunctionDef)
        _verify_function(function, globals_, fail)


def _verify_function(
    function: ast.FunctionDef, globals_: set[str], fail: Callable[[str], CodegenError]
) -> None:
    args = function.args
    if (
        function.decorator_list
        or function.returns is not None
        or args.vararg
        or args.kwarg
        or args.posonlyargs
        or args.kwonlyargs
        or any(arg.annotation is not None for arg in args.args)
        or any(not (isinstance(d, ast.Constant) and d.value is None) for d in args.defaults)
    ):
        raise fail(f"def {function.name}: not a plain signature with None defaults")
    docstring = function.body[0] if function.body else None
    if not (
        isinstance(docstring, ast.Expr)
        and isinstance(docstring.value, ast.Constant)
        and isinstance(docstring.value.value, str)
    ):
        raise fail(f"def {function.name}: no docstring")
    nodes = [node for statement in function.body[1:] for node in ast.walk(statement)]
    nodes += [*args.args, *args.defaults]
    allowed = globals_ | {arg.arg for arg in args.args}
    allowed |= {
        node.id for node in nodes if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    for node in nodes:
        line = getattr(node, "lineno", "?")
        if type(node) not in _FUNCTION_NODES:
            raise fail(f"def {function.name}: {type(node).__name__} at line {line}")
        name = getattr(node, "id", None) or getattr(node, "attr", None) or ""
        if name.startswith("_"):
            raise fail(f"def {function.name}: the name {name!r} at line {line}")
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and name not in allowed:
            raise fail(f"def {function.name}: reads the unknown name {name!r} at line {line}")


@dataclass
class _Group:
    """One recurrent matrix product shared by several gates: ``operand @ param[blocks].T``."""

    param: Parameter
    operand: str
    blocks: list[str] = field(default_factory=list)
    variable: str = ""
    weight: str = ""
    emitted: bool = False


class _FunctionWriter:
    def __init__(self, cell: Cell, backend: Backend) -> None:
        self.cell = cell
        self.b = backend
        self.params = {param.name: param for param in cell.parameters}
        self.states = [state.name for state in cell.states]
        self.equations = [(eq.target, _normalize(eq.expr, self.params)) for eq in cell.equations]
        for what, name in collisions(cell):
            raise CodegenError(
                f"{cell.name}: {what} {name!r} collides with a name the generated code uses; "
                "rename it"
            )
        self.dim_lines: list[str] = []
        self.prelude: list[str] = []
        self.body: list[str] = []
        self.locals: dict[str, str] = {}
        self.dims: dict[str, str] = {}
        self.groups: dict[tuple[str, str], _Group] = {}
        self.gate_eqs = [(t, e) for t, e in self.equations if t in cell.gates]
        self.slab_param, self.slab_biases = self._plan_slab()
        self.tanh_gates: frozenset[str] | None = None  # gates computed through one sigmoid

    # -- naming -------------------------------------------------------------------------
    def _local(self, name: str) -> str:
        return f"{name}_next" if name in self.states else name

    def _block_size(self, param: Parameter) -> str:
        dim = param.block_shape[0]
        if dim not in self.dims:
            self.dims[dim] = dim
            self.dim_lines.append(f"{dim} = {param.name}.shape[0] // {len(param.blocks)}")
        return dim

    def _range(self, param: Parameter, first: str, count: int = 1) -> str:
        """The slice of ``param``'s rows for ``count`` blocks starting at block ``first``."""
        start = param.blocks.index(first)
        if start == 0 and count == len(param.blocks):
            return ":"
        dim = self._block_size(param)
        begin = "" if start == 0 else (dim if start == 1 else f"{start} * {dim}")
        end_block = start + count
        end = (
            ""
            if end_block == len(param.blocks)
            else (dim if end_block == 1 else f"{end_block} * {dim}")
        )
        return f"{begin} : {end}".strip() if begin and end else f"{begin}:{end}"

    def _vector_block(self, param: Parameter, gate: str) -> str:
        rows = self._range(param, gate)
        if rows == ":":
            return param.name
        name = f"{param.name}_{gate}"
        if name not in self.locals:
            self.locals[name] = name
            self.prelude.append(f"{name} = {param.name}[{rows}]")
        return name

    # -- planning -----------------------------------------------------------------------
    def _plan_slab(self) -> tuple[Parameter | None, dict[str, tuple[str, ...]]]:
        """The input projection hoisted out of the loop, if every gate has the same one and
        the input appears nowhere else; with the biases each gate's block can absorb."""
        if len(self.gate_eqs) != len(self.cell.gates):
            return None, {}
        found: set[str] = set()
        biases: dict[str, tuple[str, ...]] = {}
        for gate, expr in self.gate_eqs:
            terms = notation.summands(_preactivation(expr)[1])
            inputs = [t for t in terms if self._is_input_product(t, gate)]
            if len(inputs) != 1:
                return None, {}
            assert isinstance(inputs[0], BinOp) and isinstance(inputs[0].left, Block)
            found.add(inputs[0].left.param)
            biases[gate] = tuple(
                t.param for t in terms if isinstance(t, Block) and self._is_hoistable_bias(t, gate)
            )
        uses_of_input = sum(
            node == Name(INPUT) for _, expr in self.equations for node in expr.walk()
        )
        if len(found) != 1 or uses_of_input != len(self.gate_eqs):
            return None, {}
        param = self.params[found.pop()]
        if param.blocks != self.cell.gates:
            return None, {}
        return param, biases

    def _is_input_product(self, term: Expr, gate: str) -> bool:
        return (
            isinstance(term, BinOp)
            and term.op == "@"
            and term.right == Name(INPUT)
            and isinstance(term.left, Block)
            and term.left.gate == gate
        )

    def _is_hoistable_bias(self, term: Expr, gate: str) -> bool:
        if not isinstance(term, Block) or term.gate != gate:
            return False
        param = self.params[term.param]
        return len(param.block_shape) == 1 and param.blocks == self.cell.gates

    def _plan_groups(self) -> None:
        current = self._initial_names()
        for target, expr in self.equations:
            for node in expr.walk():
                if isinstance(node, BinOp) and node.op == "@" and isinstance(node.left, Block):
                    if self.slab_param and node.right == Name(INPUT):
                        continue
                    operand = self._render(node.right, current, None)
                    key = (node.left.param, operand)
                    group = self.groups.setdefault(
                        key, _Group(self.params[node.left.param], operand)
                    )
                    if node.left.gate not in group.blocks:
                        group.blocks.append(node.left.gate)
            if target in self.states:
                current[target] = self._local(target)
        per_param: dict[str, int] = {}
        for group in self.groups.values():
            param = group.param
            group.blocks.sort(key=param.blocks.index)
            short = param.name.removeprefix("weight_")
            count = per_param[param.name] = per_param.get(param.name, 0) + 1
            group.variable = short if count == 1 else f"{short}_{count}"
            contiguous = _contiguous(group.blocks, param.blocks)
            full = group.blocks == list(param.blocks)
            suffix = "" if full else "_" + "".join(group.blocks)
            group.weight = self.b.step_weight_name.format(f"{param.name}{suffix}")
            if group.weight in self.locals:
                continue
            self.locals[group.weight] = group.weight
            if full:
                source = param.name
            elif contiguous:
                source = f"{param.name}[{self._range(param, group.blocks[0], len(group.blocks))}]"
            else:
                parts = ", ".join(f"{param.name}[{self._range(param, g)}]" for g in group.blocks)
                source = self.b.concat.format(parts)
            self.prelude.append(f"{group.weight} = {self.b.step_weight.format(source)}")

    def _initial_names(self) -> dict[str, str]:
        """Code names at the start of a step: the previous states and this step's input."""
        return {INPUT: "x_t", **{name: name for name in self.states}}

    # -- rendering ----------------------------------------------------------------------
    def _render(
        self,
        expr: Expr,
        names: dict[str, str],
        own: tuple[str, str, bool] | None,
        parent: int = 0,
        right: bool = False,
    ) -> str:
        """Code for ``expr``; ``own`` = (gate, rows, fused): that gate's blocks cover ``rows``."""
        if isinstance(expr, Number):
            exact_int = expr.value.is_integer() and abs(expr.value) < 2**53
            return repr(int(expr.value)) if exact_int else repr(expr.value)
        if isinstance(expr, Name):
            if expr.id in self.params:
                return self.params[expr.id].name
            if expr.id in self._folded_gates():
                return f"({_sigmoid_name(expr.id)} * 2 - 1)"
            return names.get(expr.id, expr.id)
        if isinstance(expr, Block):
            param = self.params[expr.param]
            if own and own[0] == expr.gate and own[2] and param.blocks == self.cell.gates:
                return param.name if own[1] == ":" else f"{param.name}[{own[1]}]"
            return self._vector_block(param, expr.gate)
        if isinstance(expr, Neg):
            return f"-{self._render(expr.operand, names, own, 3)}"
        if isinstance(expr, Call):
            inner = self._render(expr.args[0], names, own, 0)
            return self.b.functions[expr.func].format(inner)
        assert isinstance(expr, BinOp)
        if expr.op == "@" and isinstance(expr.left, Block):
            return self._render_product(expr, names, own)
        fused = self._render_fused(expr, names, own)
        if fused is not None:
            return fused
        precedence = _PRECEDENCE[expr.op]
        left = self._render(expr.left, names, own, precedence)
        right_code = self._render(expr.right, names, own, precedence, right=True)
        code = f"{left} {expr.op} {right_code}"
        needs_parens = precedence < parent or (right and precedence == parent)
        return f"({code})" if needs_parens else code

    def _render_fused(
        self, expr: BinOp, names: dict[str, str], own: tuple[str, str, bool] | None
    ) -> str | None:
        """``a + b * c`` as one multiply-add, ``a * tanh(b)`` through one sigmoid, where the
        backend has them."""
        fused = self.b.fused
        if fused is None:
            return None
        if expr.op == "*":
            for factor, other in ((expr.left, expr.right), (expr.right, expr.left)):
                if isinstance(other, Call) and other.func == "tanh":
                    if isinstance(factor, (Name, Block)):
                        return fused.times_tanh.format(
                            self._render(factor, names, own),
                            self._render(other.args[0], names, own, _PRECEDENCE["*"]),
                        )
        if expr.op == "+":
            for addend, product in ((expr.left, expr.right), (expr.right, expr.left)):
                if _is_tensor_product(product) and not _is_scalar(addend):
                    assert isinstance(product, BinOp)
                    folded = self._fold_tanh_gate(fused, addend, product, names, own)
                    if folded is not None:
                        return folded
                    return fused.addcmul.format(
                        *(
                            self._render(e, names, own)
                            for e in (addend, product.left, product.right)
                        )
                    )
        return None

    def _folded_gates(self) -> frozenset[str]:
        """Tanh gates known only by their sigmoid (``g_sigmoid``); states are written out."""
        return self.tanh_gates - set(self.states) if self.tanh_gates else frozenset()

    def _fold_tanh_gate(
        self,
        fused: FusedForms,
        addend: Expr,
        product: BinOp,
        names: dict[str, str],
        own: tuple[str, str, bool] | None,
    ) -> str | None:
        """``a + m * g`` for a tanh gate g = 2 * s - 1 as ``(a - m) + 2 * m * s``: one
        multiply-add on the gate's sigmoid instead of materializing g."""
        for factor, gate in ((product.left, product.right), (product.right, product.left)):
            if (
                isinstance(gate, Name)
                and gate.id in self._folded_gates()
                and isinstance(factor, (Name, Block))
            ):
                return fused.fold_tanh_gate.format(
                    self._render(addend, names, own),
                    self._render(factor, names, own),
                    _sigmoid_name(gate.id),
                )
        return None

    def _render_product(
        self, expr: BinOp, names: dict[str, str], own: tuple[str, str, bool] | None
    ) -> str:
        assert isinstance(expr.left, Block)
        operand = self._render(expr.right, names, None)
        group = self.groups.get((expr.left.param, operand))
        if group is None:
            raise CodegenError(f"{self.cell.name}: no plan for {expr}")
        if not group.emitted:
            operand_code = self._render(expr.right, names, None, 3)
            product = self.b.product.format(a=operand_code, w=group.weight)
            self.body.append(f"{group.variable} = {product}")
            group.emitted = True
        gate = expr.left.gate
        fused = own[1] if own and own[0] == gate else None
        columns = self._group_columns(group, fused, gate)
        return group.variable if columns == ":" else f"{group.variable}[:, {columns}]"

    def _group_columns(self, group: _Group, fused: str | None, gate: str) -> str:
        if fused is not None and group.blocks == list(group.param.blocks):
            return fused
        if len(group.blocks) == 1:
            return ":"
        local = Parameter(group.param.name, tuple(group.blocks), group.param.block_shape)
        return self._range(local, gate)

    # -- writing ------------------------------------------------------------------------
    def write(self) -> str:
        self._plan_groups()
        cell = self.cell
        names = self._initial_names()
        fused_pre = self._fused_preactivation()
        self._plan_sigmoid_fusion(fused_pre)
        i = 0
        while i < len(self.equations):
            target, expr = self.equations[i]
            if self.tanh_gates is not None and target in cell.gates:
                if target == self.gate_eqs[0][0]:
                    self.body.extend(self._split_all_gates())
                if target in self.states:
                    names[target] = self._local(target)
                i += 1
                continue
            run = self._gate_run(i, fused_pre)
            if len(run) > 1:
                self._write_run(run, names, fused_pre)
                i += len(run)
                continue
            if target in cell.gates and (self.slab_param or fused_pre):
                code = self._render_gate(
                    target,
                    expr,
                    names,
                    ":" if len(cell.gates) == 1 else self._gate_slice(target, 1),
                    fused_pre,
                )
            else:
                code = self._render(expr, names, None)
            self.body.append(f"{self._local(target)} = {code}")
            if target in self.states:
                names[target] = self._local(target)
            i += 1
        return self._assemble(fused_pre)

    def _fused_preactivation(self) -> bool:
        """True when every gate's pre-activation is x_proj + one shared recurrent product."""
        if not self.slab_param:
            return False
        keys = set()
        for gate, expr in self.gate_eqs:
            rest = [
                t
                for t in notation.summands(_preactivation(expr)[1])
                if not self._is_input_product(t, gate) and not self._is_hoistable_bias(t, gate)
            ]
            if len(rest) != 1 or not (
                isinstance(rest[0], BinOp)
                and rest[0].op == "@"
                and isinstance(rest[0].left, Block)
                and rest[0].left.gate == gate
                and isinstance(rest[0].right, Name)
                and rest[0].right.id in self.states
            ):
                return False
            keys.add((rest[0].left.param, rest[0].right.id))
        if len(keys) != 1:
            return False
        group = self.groups[next(iter(keys))]
        return group.blocks == list(self.cell.gates) and group.param.blocks == self.cell.gates

    def _plan_sigmoid_fusion(self, fused_pre: bool) -> None:
        """One sigmoid for all gates: tanh(a) = 2 * sigmoid(2 * a) - 1 for the tanh gates.

        PyTorch's CPU tanh costs several sigmoids; the factor 2 goes into the rows of those
        gates in the weights and biases once, before the loop (``gate_scale``).
        """
        if not (fused_pre and self.b.fused is not None and self.slab_param):
            return
        functions = {gate: _preactivation(expr)[0] for gate, expr in self.gate_eqs}
        if not set(functions.values()) <= {"sigmoid", "tanh"} or "tanh" not in functions.values():
            return
        tanh_gates = frozenset(gate for gate, func in functions.items() if func == "tanh")
        folded = {Name(gate) for gate in tanh_gates - set(self.states)}
        operands = [
            node.right
            for _, expr in self.equations
            for node in expr.walk()
            if isinstance(node, BinOp) and node.op == "@"
        ]
        if any(node in folded for operand in operands for node in operand.walk()):
            return  # the products were planned with the gate as it is written
        self.tanh_gates = tanh_gates
        if len(self.tanh_gates) < len(self.cell.gates):
            param = self.slab_param
            lines = [f"gate_scale = {param.name}.new_ones({param.name}.shape[0])"]
            for tanh, run in groupby(self.cell.gates, key=self.tanh_gates.__contains__):
                gates = list(run)
                if tanh:
                    lines.append(f"gate_scale[{self._range(param, gates[0], len(gates))}] = 2")
            self.prelude[:0] = lines
        self.prelude.insert(
            0, "# tanh(a) = 2 * sigmoid(2 * a) - 1: one sigmoid call serves every gate"
        )
        group = next(g for g in self.groups.values() if g.blocks == list(self.cell.gates))
        plain = f"{group.weight} = {self.b.step_weight.format(group.param.name)}"
        scaled = self.b.step_weight.format(self._scaled(group.param.name, matrix=True))
        self.prelude[self.prelude.index(plain)] = f"{group.weight} = {scaled}"

    def _scaled(self, code: str, matrix: bool) -> str:
        """``code`` (a stacked weight or bias) with the tanh gates' rows doubled."""
        if self.tanh_gates is None:
            return code
        if len(self.tanh_gates) == len(self.cell.gates):
            return f"({code} * 2)" if matrix else f"({code}) * 2"
        return f"({code} * gate_scale[:, None])" if matrix else f"({code}) * gate_scale"

    def _split_all_gates(self) -> list[str]:
        """Every gate from the one sigmoid over ``gates``. A tanh gate g is 2 * g_sigmoid - 1:
        written out where g is a state, folded into its uses elsewhere."""
        assert self.tanh_gates is not None
        gates = self.cell.gates
        if len(gates) == 1 and gates[0] not in self._folded_gates():
            gate = gates[0]
            value = "gates * 2 - 1" if gate in self.tanh_gates else "gates"
            return [f"{self._local(gate)} = {value}"]
        names = [_sigmoid_name(g) if g in self.tanh_gates else self._local(g) for g in gates]
        split = "gates" if len(gates) == 1 else self.b.split.format("gates", len(gates))
        lines = [f"{', '.join(names)} = {split}"]
        for gate in (g for g in gates if g in self.tanh_gates and g in self.states):
            lines.append(f"{self._local(gate)} = {_sigmoid_name(gate)} * 2 - 1")
        return lines

    def _gate_slice(self, gate: str, count: int) -> str:
        assert self.slab_param is not None
        return self._range(self.slab_param, gate, count)

    def _render_gate(
        self,
        gate: str,
        expr: Expr,
        names: dict[str, str],
        rows: str,
        fused_pre: bool,
        fused_run: bool = False,
    ) -> str:
        func, pre = _preactivation(expr)
        column = ":" if rows == ":" else f":, {rows}"
        if fused_pre:
            pre_code = f"gates[{column}]" if rows != ":" else "gates"
        else:
            rest = [
                t
                for t in notation.summands(pre)
                if not self._is_input_product(t, gate) and not self._is_hoistable_bias(t, gate)
            ]
            slab = f"x_proj_t[{column}]" if rows != ":" else "x_proj_t"
            parts = [slab] + [self._render(t, names, (gate, rows, fused_run), 1) for t in rest]
            pre_code = " + ".join(parts).replace("+ -", "- ")
        return self.b.functions[func].format(pre_code) if func else pre_code

    def _gate_run(self, start: int, fused_pre: bool) -> list[tuple[str, Expr]]:
        """Consecutive gate equations on consecutive blocks with the same form."""
        if not self.slab_param:
            return []
        run: list[tuple[str, Expr]] = []
        template = None
        for target, expr in self.equations[start:]:
            if target not in self.cell.gates or target in self.states:
                break
            if run and self.cell.gates.index(target) != self.cell.gates.index(run[-1][0]) + 1:
                break
            form = self._dry_run(
                partial(
                    self._render_gate,
                    target,
                    expr,
                    dict(zip(self.states, self.states, strict=True)),
                    "ROWS",
                    fused_pre,
                    True,
                )
            )
            if template is not None and form != template:
                break
            template = form
            run.append((target, expr))
        return run

    def _dry_run(self, render: Callable[[], str]) -> str:
        """Render without keeping any side effect (prelude lines, emitted products)."""
        saved = (
            list(self.body),
            list(self.prelude),
            dict(self.locals),
            {key: group.emitted for key, group in self.groups.items()},
        )
        code = render()
        self.body, self.prelude, self.locals = saved[0], saved[1], saved[2]
        for key, emitted in saved[3].items():
            self.groups[key].emitted = emitted
        return code

    def _write_run(
        self, run: list[tuple[str, Expr]], names: dict[str, str], fused_pre: bool
    ) -> None:
        first, expr = run[0]
        rows = self._gate_slice(first, len(run))
        code = self._render_gate(first, expr, names, rows, fused_pre, True)
        targets = ", ".join(self._local(target) for target, _ in run)
        self.body.append(f"{targets} = {self.b.split.format(code, len(run))}")

    def _assemble(self, fused_pre: bool) -> str:
        cell, b = self.cell, self.b
        required = [p.name for p in cell.parameters if p.optional is None]
        optional = [p.name for p in cell.parameters if p.optional is not None]
        signature = ", ".join(
            ["x", "state", *required, *(f"{name}=None" for name in optional), "masks=None"]
        )
        states = [s.name for s in cell.states]
        unpack = f"{', '.join(states)}{',' if len(states) == 1 else ''} = state"
        lines = [f"def {cell.function_name}({signature}):"]
        variant = "" if cell.is_base else f" ({cell.variant})"
        lines.append(f'    """{_escaped(f"{cell.title}{variant}: {cell.summary}")}')
        lines.append("")
        lines.append(
            "    One layer, one direction. x: (T, B, input); state: "
            f"({', '.join(states)}{',' if len(states) == 1 else ''}); masks: (T, B, 1) bool or None."
        )
        lines.append(
            f"    Returns (output (T, B, {cell.output}), ({', '.join(states)}{',' if len(states) == 1 else ''}))."
        )
        lines.append('    """')
        lines.append(f"    {unpack}")
        if b.preamble:
            lines.append(f"    {b.preamble.format(', '.join(p.name for p in cell.parameters))}")
        for line in [*self.dim_lines, *self.prelude]:
            lines.append(f"    {line}")
        if self.slab_param:
            lines.extend(f"    {line}" for line in self._slab_code())
            lines.append("    outputs = []")
            lines.append(f"    for t, x_proj_t in {b.steps}:")
        else:
            lines.append("    outputs = []")
            lines.append(f"    for t, x_t in {b.steps_x}:")
        if fused_pre:
            group = next(g for g in self.groups.values() if g.blocks == list(cell.gates))
            gates = b.product_add.format(add="x_proj_t", a=group.operand, w=group.weight)
            if self.tanh_gates is not None:
                assert b.fused is not None  # tanh gates come only from its sigmoid
                gates = b.fused.gates_sigmoid.format(gates)
            lines.append(f"        gates = {gates}")
        lines.extend(f"        {line}" for line in self.body)
        for state in cell.states:
            if state.projection:
                weight = b.transpose.format(state.projection)
                lines.append(f"        if {state.projection} is not None:")
                lines.append(f"            {state.name}_next = {state.name}_next @ {weight}")
        out = f"{cell.output}_next"
        lines.append("        if masks is not None:")
        lines.append("            keep = masks[t]")
        lines.append(f"            outputs.append({b.where.format('keep', out, '0.0')})")
        for name in states:
            lines.append(
                f"            {name}_next = {b.where.format('keep', f'{name}_next', name)}"
            )
        lines.append("        else:")
        lines.append(f"            outputs.append({out})")
        nexts = ", ".join(f"{name}_next" for name in states)
        lines.append(f"        {', '.join(states)} = {nexts}")
        lines.append(
            f"    return {b.stack.format('outputs')}, ({', '.join(states)}{',' if len(states) == 1 else ''})"
        )
        return "\n".join(lines) + "\n\n"

    def _slab_code(self) -> tuple[str, str]:
        param = self.slab_param
        assert param is not None
        b = self.b
        weight = self._scaled(param.name, matrix=True)
        flat = "x.reshape(-1, x.shape[-1])"
        runs: list[tuple[tuple[str, ...], list[str]]] = []
        for gate in self.cell.gates:
            names = self.slab_biases[gate]
            if runs and runs[-1][0] == names:
                runs[-1][1].append(gate)
            else:
                runs.append((names, [gate]))
        pieces = []
        for names, gates in runs:
            rows = self._range(param, gates[0], len(gates))
            if not names:
                count = (
                    f"{len(gates)} * {self._block_size(param)}"
                    if len(gates) > 1
                    else self._block_size(param)
                )
                pieces.append(
                    b.zeros.format(param.name, count if rows != ":" else f"{param.name}.shape[0]")
                )
            else:
                pieces.append(
                    " + ".join(name if rows == ":" else f"{name}[{rows}]" for name in names)
                )
        if all(not names for names, _ in runs):
            projection = b.projection.format(a=flat, w=weight)
        else:
            bias = pieces[0] if len(pieces) == 1 else b.concat.format(", ".join(pieces))
            bias = self._scaled(bias, matrix=False)
            projection = b.projection_bias.format(bias=bias, a=flat, w=weight)
        return (
            f"x_proj = {projection}",
            "x_proj = x_proj.reshape(x.shape[0], x.shape[1], x_proj.shape[-1])",
        )


def _spec_label(spec: Spec) -> str:
    """``rnnspec/specs/lstm.toml`` for shipped specs, the path as given for others."""
    shipped = SPECS_DIR / spec.path.name
    return f"rnnspec/specs/{spec.path.name}" if spec.path.resolve() == shipped else str(spec.path)


def _preactivation(expr: Expr) -> tuple[str | None, Expr]:
    if isinstance(expr, Call) and expr.func != "identity":
        return expr.func, expr.args[0]
    return None, expr


def _sigmoid_name(gate: str) -> str:
    return f"{gate}_sigmoid"


def _is_scalar(expr: Expr) -> bool:
    """Made of numbers only: a Python number in the generated code, not a tensor."""
    return not any(isinstance(node, (Name, Block)) for node in expr.walk())


def _is_tensor_product(expr: Expr) -> bool:
    return (
        isinstance(expr, BinOp)
        and expr.op == "*"
        and not _is_scalar(expr.left)
        and not _is_scalar(expr.right)
    )


def _contiguous(blocks: list[str], order: tuple[str, ...]) -> bool:
    indices = [order.index(block) for block in blocks]
    return indices == list(range(indices[0], indices[0] + len(indices)))


def _normalize(expr: Expr, params: dict[str, Parameter]) -> Expr:
    """Write single-block stacked parameters ``p`` as ``p[gate]`` so one rule handles both."""

    def block(node: Expr) -> Expr:
        if isinstance(node, Name) and node.id in params and len(params[node.id].blocks) == 1:
            return Block(node.id, params[node.id].blocks[0])
        return node

    return notation.transform(expr, block)
