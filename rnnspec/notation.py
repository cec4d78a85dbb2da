"""The equation notation: a whitelisted subset of Python expressions, parsed with ``ast``.

Spec text is never evaluated. ``parse`` turns one expression into a small immutable tree
(:class:`Expr`) that the validator, the code generator and the renderers walk.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from rnnspec.errors import Location, SpecSyntaxError

FUNCTIONS = frozenset({"sigmoid", "tanh", "relu", "hard_sigmoid", "identity"})
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
    """Base of the expression tree; ``offset`` is the column within the source string."""

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
    """An expression with the source offsets of each named leaf, for error locations."""

    expr: Expr
    source: str
    offsets: Mapping[Expr, int]

    def column_of(self, node: Expr) -> int:
        return self.offsets.get(node, 0)


def parse(source: str, location: Location) -> Positioned:
    """Parse one equation right-hand side; errors point at ``location`` plus the column."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        column = location.column + (error.offset or 1) - 1
        raise SpecSyntaxError(
            f"cannot parse equation {source!r}: {error.msg}", _shift(location, column)
        ) from None
    offsets: dict[Expr, int] = {}
    expr = _convert(tree.body, source, location, offsets)
    return Positioned(expr, source, offsets)


def _shift(location: Location, column: int) -> Location:
    return Location(location.path, location.line, column)


def _convert(node: ast.AST, source: str, location: Location, offsets: dict[Expr, int]) -> Expr:
    def fail(message: str, at: ast.AST) -> SpecSyntaxError:
        column = location.column + getattr(at, "col_offset", 0)
        return SpecSyntaxError(message, _shift(location, column))

    def convert(child: ast.AST) -> Expr:
        return _convert(child, source, location, offsets)

    result: Expr
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        result = Number(float(node.value))
    elif isinstance(node, ast.Name):
        result = Name(node.id)
    elif isinstance(node, ast.Subscript):
        if not (isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Name)):
            raise fail("a subscript must be param[gate], with two plain names", node)
        result = Block(node.value.id, node.slice.id)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        result = Neg(convert(node.operand))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return convert(node.operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPERATORS:
        result = BinOp(BINARY_OPERATORS[type(node.op)], convert(node.left), convert(node.right))
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise fail("a call must be name(arg, ...) without keywords", node)
        if node.func.id not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise fail(f"unknown function {node.func.id!r} (known: {known})", node)
        result = Call(node.func.id, tuple(convert(arg) for arg in node.args))
    else:
        raise fail(f"{type(node).__name__} is not allowed in the equation notation", node)
    offsets.setdefault(result, getattr(node, "col_offset", 0))
    return result


def names(expr: Expr) -> Iterator[Name | Block]:
    """Every name and parameter block the expression refers to."""
    for node in expr.walk():
        if isinstance(node, Name | Block):
            yield node


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
