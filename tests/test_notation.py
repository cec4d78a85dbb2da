"""The equation notation: what it parses to, what it rejects and where, and that it never runs."""

from __future__ import annotations

import pytest

from rnnspec import notation
from rnnspec.errors import Location, RnnSpecError, SpecError, SpecSyntaxError
from rnnspec.notation import BinOp, Block, Call, Name, Neg, Number

AT = Location("cell.toml", 7, 10)  # where the equation text starts in its file


def parse(source: str) -> notation.Expr:
    return notation.parse(source, AT).expr


def test_parse_builds_the_tree() -> None:
    got = parse("sigmoid(weight_ih[i] @ x + -bias + 2 * h)")
    product = BinOp("@", Block("weight_ih", "i"), Name("x"))
    pre = BinOp("+", BinOp("+", product, Neg(Name("bias"))), BinOp("*", Number(2.0), Name("h")))
    assert got == Call("sigmoid", (pre,))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a + b * c", BinOp("+", Name("a"), BinOp("*", Name("b"), Name("c")))),
        ("(a + b) * c", BinOp("*", BinOp("+", Name("a"), Name("b")), Name("c"))),
        ("a - b - c", BinOp("-", BinOp("-", Name("a"), Name("b")), Name("c"))),
        ("1 - z", BinOp("-", Number(1.0), Name("z"))),
        ("0.5 / a", BinOp("/", Number(0.5), Name("a"))),
        ("+a", Name("a")),
        ("-(a @ b)", Neg(BinOp("@", Name("a"), Name("b")))),
        ("identity(a)", Call("identity", (Name("a"),))),
    ],
)
def test_parse_precedence_and_forms(source: str, expected: notation.Expr) -> None:
    assert parse(source) == expected


def test_every_function_is_accepted() -> None:
    for function in notation.FUNCTIONS:
        assert parse(f"{function}(h)") == Call(function, (Name("h"),))


def test_names_and_summands() -> None:
    expr = parse("w[i] @ x + b[i] - u[i] @ h")
    referenced = [Block("w", "i"), Name("x"), Block("b", "i"), Block("u", "i"), Name("h")]
    assert list(notation.names(expr)) == referenced
    assert notation.summands(expr) == [
        BinOp("@", Block("w", "i"), Name("x")),
        Block("b", "i"),
        Neg(BinOp("@", Block("u", "i"), Name("h"))),
    ]


def test_evaluate_arithmetic() -> None:
    expr = parse("layer * num_directions + direction")
    assert notation.evaluate(expr, {"layer": 2, "num_directions": 2, "direction": 1}) == 5
    assert notation.evaluate(parse("-(a - 1) / 2"), {"a": 5}) == -2
    with pytest.raises(ValueError, match="not plain arithmetic"):
        notation.evaluate(parse("tanh(a)"), {"a": 1})


# (source, message, offset of the reported column within the source)
REJECTED = [
    ("__import__('os')", "unknown function '__import__'", 0),
    ("tanh(__import__('os').system('true'))", "a call must be name(arg, ...)", 5),
    ("open('/tmp/x', 'w')", "unknown function 'open'", 0),
    ("exp(h)", "unknown function 'exp'", 0),
    ("tanh(h.T)", "Attribute is not allowed", 5),
    ("h.__class__", "Attribute is not allowed", 0),
    ("tanh(lambda: h)", "Lambda is not allowed", 5),
    ("(lambda: h)()", "a call must be name(arg, ...)", 0),
    ("tanh(h, out=h)", "without keywords", 0),
    ("a + h ** 2", "operator Pow is not allowed (allowed: + - * / @)", 4),
    ("a + h // 2", "operator FloorDiv is not allowed", 4),
    ("a + (h > 0)", "Compare is not allowed", 5),
    ("a and h", "BoolOp is not allowed", 0),
    ("h if a else b", "IfExp is not allowed", 0),
    ("a + 'text'", "only int and float constants are allowed, got 'text'", 4),
    ("a * True", "only int and float constants are allowed, got True", 4),
    ("a + [h]", "List is not allowed", 4),
    ("[h for h in a]", "ListComp is not allowed", 0),
    ("a + (y := h)", "NamedExpr is not allowed", 5),
    ("w[0] @ h", "a subscript must be param[gate]", 0),
    ("w[i][j] @ h", "a subscript must be param[gate]", 0),
    ("a + ~h", "UnaryOp is not allowed", 4),
    ("a + f'{h}'", "JoinedStr is not allowed", 4),
]


@pytest.mark.parametrize(("source", "message", "offset"), REJECTED, ids=[r[0] for r in REJECTED])
def test_rejected_constructs(source: str, message: str, offset: int) -> None:
    with pytest.raises(SpecSyntaxError) as info:
        notation.parse(source, AT)
    assert info.value.location == Location("cell.toml", 7, 10 + offset)
    assert str(info.value).startswith(f"cell.toml:7:{10 + offset}: ")
    assert message in info.value.message


@pytest.mark.parametrize(
    ("source", "offset"),
    [
        ("tanh(a + )", 9),  # the closing parenthesis
        ("tanh(a", 4),  # the parenthesis never closed
        ("a b", 2),
        ("import os", 0),
        ("h = a", 2),
        ("", 0),
    ],
)
def test_syntax_errors_point_into_the_equation(source: str, offset: int) -> None:
    with pytest.raises(SpecSyntaxError, match="cannot parse equation") as info:
        notation.parse(source, AT)
    assert info.value.location == Location("cell.toml", 7, 10 + offset)


def test_leading_whitespace_keeps_columns() -> None:
    with pytest.raises(SpecSyntaxError) as info:
        notation.parse("   tanh(h.T)", AT)
    assert info.value.location == Location("cell.toml", 7, 10 + 8)
    positioned = notation.parse("  a + b", AT)
    assert positioned.column_of(Name("b")) == 6


def test_multi_line_equation_locations() -> None:
    """An equation spread over lines (a TOML multi-line string) reports line and column."""
    source = "tanh(a\n    + h.T)"
    with pytest.raises(SpecSyntaxError) as info:
        notation.parse(source, AT)
    assert info.value.location == Location("cell.toml", 8, 7)
    with pytest.raises(SpecSyntaxError, match="cannot parse") as info:
        notation.parse("tanh(a\n  + )", AT)
    assert info.value.location == Location("cell.toml", 8, 5)
    valid = "tanh(a\n    + b)"
    offset = notation.parse(valid, AT).column_of(Name("b"))
    assert notation.position(AT, valid, offset) == Location("cell.toml", 8, 7)
    assert notation.position(AT, valid, 5) == Location("cell.toml", 7, 15)


def test_syntax_error_is_a_spec_error_and_a_value_error() -> None:
    assert issubclass(SpecSyntaxError, SpecError)
    assert issubclass(SpecSyntaxError, RnnSpecError)
    assert issubclass(SpecSyntaxError, ValueError)


def test_spec_text_is_never_evaluated(no_eval: None, tmp_path) -> None:
    """Parsing runs no Python: eval/exec are off limits, side-effecting calls are rejected."""
    assert parse("sigmoid(w[i] @ x + b[i])") == Call(
        "sigmoid", (BinOp("+", BinOp("@", Block("w", "i"), Name("x")), Block("b", "i")),)
    )
    sentinel = tmp_path / "evaluated"
    attempts = [
        f"__import__('os').system('touch {sentinel}')",
        f"tanh(__import__('pathlib').Path('{sentinel}').touch())",
        f"open('{sentinel}', 'w')",
        f"print(open('{sentinel}', 'w'))",
    ]
    for source in attempts:
        with pytest.raises(SpecSyntaxError):
            notation.parse(source, AT)
    assert not sentinel.exists()
