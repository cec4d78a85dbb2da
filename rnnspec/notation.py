"""The equation notation: a whitelisted subset of Python expressions, parsed with ``ast``.

Spec text is never evaluated. ``parse`` turns one expression into a small immutable tree
(:class:`Expr`) that the validator, the code generator and the renderers walk.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from rnnspec.errors import Location, SpecSyntaxError

FUNCTIONS = frozenset({"sigmoid", "tanh", "relu", "hard_sigmoid", "identity"})
MAX_LENGTH = 1000  # characters of one equation
MAX_DEPTH = 64  # nesting of its syntax tree
_ARITHMETIC: Mapping[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
BINARY_OPERATORS: Mapping[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.MatMult: "@",
}


@dataclass(frozen=True)
class Expr:
    """Base of the expression tree."""

    def children(self) -> tuple[Expr, ...]:
        return ()

    def walk(self) -> Iterator[Expr]:
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass(frozen=True)
class Number(Expr):
    value: float


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class Block(Expr):
    """``param[gate]``: the rows of a stacked parameter that belong to one gate."""

    param: str
    gate: str


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.operand,)


@dataclass(frozen=True)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr

    def children(self) -> tuple[Expr, ...]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]

    def children(self) -> tuple[Expr, ...]:
        return self.args


@dataclass(frozen=True)
class Positioned:
    """An expression with the source offset of each node, for error locations."""

    expr: Expr
    source: str
    offsets: Mapping[Expr, int]

    def column_of(self, node: Expr) -> int:
        return self.offsets.get(node, 0)


def parse(source: str, location: Location) -> Positioned:
    """Parse one equation right-hand side; errors point into it from ``location``.

    ``location`` is where ``source`` starts in the file; offsets count characters of
    ``source``, leading whitespace and line breaks included (see :func:`position`).
    """
    if len(source) > MAX_LENGTH:
        raise SpecSyntaxError(f"equation is longer than {MAX_LENGTH} characters", location)
    stripped = source.strip()
    lead = len(source) - len(source.lstrip())
    starts = [0, *(index + 1 for index, char in enumerate(stripped) if char == "\n")]

    def offset(lineno: int | None, col_offset: int | None) -> int:
        return lead + starts[min(max(lineno or 1, 1), len(starts)) - 1] + (col_offset or 0)

    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError as error:
        where = position(location, source, offset(error.lineno, (error.offset or 1) - 1))
        raise SpecSyntaxError(f"cannot parse equation {source!r}: {error.msg}", where) from None
    except (RecursionError, MemoryError):  # the parser's own nesting limits
        raise SpecSyntaxError(f"equation nested more than {MAX_DEPTH} levels", location) from None
    deep = _too_deep(tree)
    if deep is not None:
        where = position(location, source, offset(deep.lineno, deep.col_offset))
        raise SpecSyntaxError(f"equation nested more than {MAX_DEPTH} levels", where)
    offsets: dict[Expr, int] = {}

    def fail(message: str, at: ast.AST) -> SpecSyntaxError:
        at_offset = offset(getattr(at, "lineno", 1), getattr(at, "col_offset", 0))
        return SpecSyntaxError(message, position(location, source, at_offset))

    def convert(node: ast.AST) -> Expr:
        result = _convert(node, convert, fail)
        offsets.setdefault(result, offset(node.lineno, node.col_offset))  # type: ignore[attr-defined]
        return result

    return Positioned(convert(tree.body), source, offsets)


def _too_deep(tree: ast.Expression) -> ast.expr | None:
    """The first expression node deeper than MAX_DEPTH, found without recursion."""
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH and isinstance(node, ast.expr):
            return node
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def position(location: Location, source: str, offset: int) -> Location:
    """The file location of character ``offset`` of ``source``, which starts at ``location``."""
    newlines = source.count("\n", 0, offset)
    if not newlines:
        return Location(location.path, location.line, location.column + offset)
    column = offset - source.rfind("\n", 0, offset)
    return Location(location.path, location.line + newlines, column)


def _convert(
    node: ast.AST,
    convert: Callable[[ast.AST], Expr],
    fail: Callable[[str, ast.AST], SpecSyntaxError],
) -> Expr:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"only int and float constants are allowed, got {value!r:.80}", node)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise fail(f"the number {value!r:.20} is too large (not a finite float)", node)
        return Number(number)
    if isinstance(node, ast.Name):
        return Name(node.id)
    if isinstance(node, ast.Subscript):
        if not (isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Name)):
            raise fail("a subscript must be param[gate], with two plain names", node)
        return Block(node.value.id, node.slice.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return Neg(convert(node.operand))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return convert(node.operand)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in BINARY_OPERATORS:
            allowed = " ".join(BINARY_OPERATORS.values())
            raise fail(
                f"operator {type(node.op).__name__} is not allowed (allowed: {allowed})", node
            )
        return BinOp(BINARY_OPERATORS[type(node.op)], convert(node.left), convert(node.right))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise fail("a call must be name(arg, ...) without keywords", node)
        if node.func.id not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise fail(f"unknown function {node.func.id!r} (known: {known})", node)
        return Call(node.func.id, tuple(convert(arg) for arg in node.args))
    raise fail(f"{type(node).__name__} is not allowed in the equation notation", node)


def names(expr: Expr) -> Iterator[Name | Block]:
    """Every name and parameter block the expression refers to."""
    for node in expr.walk():
        if isinstance(node, Name | Block):
            yield node


def transform(expr: Expr, change: Callable[[Expr], Expr]) -> Expr:
    """Rebuild ``expr`` bottom-up, passing every node through ``change``."""
    if isinstance(expr, Neg):
        expr = Neg(transform(expr.operand, change))
    elif isinstance(expr, BinOp):
        expr = BinOp(expr.op, transform(expr.left, change), transform(expr.right, change))
    elif isinstance(expr, Call):
        expr = Call(expr.func, tuple(transform(arg, change) for arg in expr.args))
    return change(expr)


def summands(expr: Expr) -> list[Expr]:
    """Flatten a top-level sum: ``a + b - c`` gives ``[a, b, Neg(c)]``."""
    if isinstance(expr, BinOp) and expr.op == "+":
        return summands(expr.left) + summands(expr.right)
    if isinstance(expr, BinOp) and expr.op == "-":
        return summands(expr.left) + [Neg(term) for term in summands(expr.right)]
    return [expr]


def evaluate(expr: Expr, values: Mapping[str, float]) -> float:
    """Evaluate an arithmetic expression over numbers (used for composition formulas)."""
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Name):
        return values[expr.id]
    if isinstance(expr, Neg):
        return -evaluate(expr.operand, values)
    if isinstance(expr, BinOp) and expr.op in _ARITHMETIC:
        return _ARITHMETIC[expr.op](evaluate(expr.left, values), evaluate(expr.right, values))
    raise ValueError(f"{expr} is not plain arithmetic")
