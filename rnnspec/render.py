"""Render a cell's equations as plain text, Markdown or LaTeX."""

from __future__ import annotations

from functools import partial

from rnnspec.notation import BinOp, Block, Call, Expr, Name, Neg, Number, transform
from rnnspec.spec import Cell, Composition, shipped_specs

FORMATS = ("text", "markdown", "latex")
_LATEX_FUNCTIONS = {
    "sigmoid": r"\sigma",
    "tanh": r"\tanh",
    "relu": r"\operatorname{relu}",
    "hard_sigmoid": r"\operatorname{hard\_sigmoid}",
    "identity": "",
}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2}


def render(cell: Cell, fmt: str = "text") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    title = f"{cell.title} — {cell.name}"
    gates = ", ".join(cell.gates)
    params = [
        f"{p.name}{'[' + ','.join(p.blocks) + ']' if p.stacked else ''}: "
        f"({', '.join(p.block_shape)}){' per block' if p.stacked else ''}"
        f"{' (bias)' if p.bias else ''}{' (when proj_size > 0)' if p.optional else ''}"
        for p in cell.parameters
    ]
    states = [
        f"{s.name}: {s.size}" + (f", projected by {s.projection} to proj" if s.projection else "")
        for s in cell.states
    ]
    primed = _primed(cell)
    if fmt == "latex":
        lines = [_latex(target, expr, cell) for target, expr in primed]
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}\n"
    equations = [
        f"{target}' = {_text(expr, cell)}"
        if target in {s.name for s in cell.states}
        else f"{target} = {_text(expr, cell)}"
        for target, expr in primed
    ]
    if fmt == "markdown":
        return "\n".join(
            [
                f"### {title}",
                "",
                cell.summary,
                "",
                f"Gates, in stacking order: ({gates})",
                "",
                "| state | size |",
                "|---|---|",
                *(f"| {s} |".replace(": ", " | ") for s in states),
                "",
                "```",
                *equations,
                "```",
                "",
                "Parameters:",
                "",
                *(f"- `{p}`" for p in params),
                "",
            ]
        )
    return "\n".join(
        [
            title,
            cell.summary,
            f"gates: ({gates})",
            "state: " + "; ".join(states),
            "parameters:",
            *(f"  {p}" for p in params),
            "equations (in order; primed = new value):",
            *(f"  {line}" for line in equations),
            "",
        ]
    )


def render_composition(composition: Composition) -> str:
    lines = [f"state index = {composition.state_index_source}"]
    lines += [f"{key}: {value}" for key, value in composition.rules.items()]
    return "\n".join(lines) + "\n"


def _primed(cell: Cell) -> list[tuple[str, Expr]]:
    """The equations, with a state read after its update written primed: ``h' = o * tanh(c')``."""
    states = {state.name for state in cell.states}
    updated: dict[str, str] = {}
    equations = []
    for eq in cell.equations:
        equations.append((eq.target, transform(eq.expr, partial(_renamed, names=dict(updated)))))
        if eq.target in states:
            updated[eq.target] = f"{eq.target}'"
    return equations


def _renamed(node: Expr, names: dict[str, str]) -> Expr:
    return Name(names.get(node.id, node.id)) if isinstance(node, Name) else node


def _number(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _text(expr: Expr, cell: Cell, parent: int = 0, right: bool = False) -> str:
    if isinstance(expr, Number):
        return _number(expr.value)
    if isinstance(expr, Name):
        return expr.id
    if isinstance(expr, Block):
        return f"{expr.param}[{expr.gate}]"
    if isinstance(expr, Neg):
        return f"-{_text(expr.operand, cell, 3)}"
    if isinstance(expr, Call):
        return f"{expr.func}({_text(expr.args[0], cell)})"
    assert isinstance(expr, BinOp)
    precedence = _PRECEDENCE[expr.op]
    code = f"{_text(expr.left, cell, precedence)} {expr.op} {_text(expr.right, cell, precedence, True)}"
    return f"({code})" if precedence < parent or (right and precedence == parent) else code


def _latex(target: str, expr: Expr, cell: Cell) -> str:
    lhs = f"{target}'" if target in {s.name for s in cell.states} else target
    return f"{lhs} &= {_latex_expr(expr, cell)}"


def _latex_expr(expr: Expr, cell: Cell, parent: int = 0, right: bool = False) -> str:
    if isinstance(expr, Number):
        return _number(expr.value)
    if isinstance(expr, Name):
        if expr.id in {p.name for p in cell.parameters}:
            return _symbol(cell, expr.id, "")
        return expr.id
    if isinstance(expr, Block):
        return _symbol(cell, expr.param, expr.gate)
    if isinstance(expr, Neg):
        return f"-{_latex_expr(expr.operand, cell, 3)}"
    if isinstance(expr, Call):
        inner = _latex_expr(expr.args[0], cell)
        func = _LATEX_FUNCTIONS[expr.func]
        return rf"{func}\left({inner}\right)" if func else inner
    assert isinstance(expr, BinOp)
    precedence = _PRECEDENCE[expr.op]
    op = {"*": r"\odot", "@": "", "/": "/"}.get(expr.op, expr.op)
    left = _latex_expr(expr.left, cell, precedence)
    right_code = _latex_expr(expr.right, cell, precedence, True)
    code = f"{left} {op} {right_code}".replace("  ", " ")
    return (
        rf"\left({code}\right)" if precedence < parent or (right and precedence == parent) else code
    )


def _symbol(cell: Cell, name: str, gate: str) -> str:
    param = cell.parameter(name)
    symbol = param.symbol or name.replace("_", r"\_")
    return symbol.replace("%s", gate) if "%s" in symbol else symbol


def shipped_cells() -> str:
    """One line per shipped cell and variant: its title and its torch.nn equivalent."""
    lines = []
    for kind, loaded in shipped_specs().items():
        for variant, cell in loaded.cells.items():
            label = cell.name if not cell.is_base else f"{kind} ({variant})"
            torch_name = f"torch.nn.{cell.torch.module}" if cell.torch else "no torch.nn equivalent"
            lines.append(f"{label:24} {cell.title}; {torch_name}\n")
    return "".join(lines)
