"""The spec commands of the CLI: ``rnnspec show`` and ``rnnspec list-specs``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rnnspec import cli, notation, render, spec
from rnnspec.errors import Location
from tests.test_spec import EQUATION, toy

USER_SPECS = Path(__file__).parent / "specs"
LISTING = [
    "elman (tanh)             Elman RNN; torch.nn.RNN",
    "elman:relu               Elman RNN; torch.nn.RNN",
    "gru (reset_after)        Gated recurrent unit; torch.nn.GRU",
    "gru:reset_before         Gated recurrent unit; no torch.nn equivalent",
    "lstm (default)           Long short-term memory; torch.nn.LSTM",
    "lstm:peephole            Long short-term memory; no torch.nn equivalent",
    "lstm:coupled             Long short-term memory; no torch.nn equivalent",
]


def run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


@pytest.mark.parametrize("argv", [["show"], ["list-specs"]], ids=["show", "list-specs"])
def test_lists_the_shipped_specs(capsys, argv: list[str]) -> None:
    assert run(capsys, *argv).splitlines() == LISTING


def test_show_lstm_text(capsys) -> None:
    out = run(capsys, "show", "lstm", "--format", "text")
    assert out == run(capsys, "show", "lstm")
    lines = out.splitlines()
    assert lines[:4] == [
        "Long short-term memory — lstm",
        "Gates (i, f, g, o), two biases; with proj_size > 0, h is projected by W_hr every step.",
        "gates: (i, f, g, o)",
        "state: h: hidden, projected by weight_hr to proj; c: hidden",
    ]
    assert "  weight_hh[i,f,g,o]: (hidden, proj) per block" in lines
    assert "  bias_ih[i,f,g,o]: (hidden) per block (bias)" in lines
    assert "  weight_hr: (proj, hidden) (when proj_size > 0)" in lines
    start = lines.index("equations (in order; primed = new value):")
    assert lines[start + 1 :] == [
        "  i = sigmoid(weight_ih[i] @ x + bias_ih[i] + weight_hh[i] @ h + bias_hh[i])",
        "  f = sigmoid(weight_ih[f] @ x + bias_ih[f] + weight_hh[f] @ h + bias_hh[f])",
        "  g = tanh(weight_ih[g] @ x + bias_ih[g] + weight_hh[g] @ h + bias_hh[g])",
        "  c' = f * c + i * g",
        "  o = sigmoid(weight_ih[o] @ x + bias_ih[o] + weight_hh[o] @ h + bias_hh[o])",
        "  h' = o * tanh(c')",
    ]


def test_show_lstm_markdown(capsys) -> None:
    out = run(capsys, "show", "lstm", "--format", "markdown")
    lines = out.splitlines()
    assert lines[0] == "### Long short-term memory — lstm"
    assert "Gates, in stacking order: (i, f, g, o)" in lines
    table = lines.index("| state | size |")
    assert lines[table + 1 : table + 4] == [
        "|---|---|",
        "| h | hidden, projected by weight_hr to proj |",
        "| c | hidden |",
    ]
    fence = lines.index("```")
    assert lines[fence + 4 : fence + 8] == [
        "c' = f * c + i * g",
        "o = sigmoid(weight_ih[o] @ x + bias_ih[o] + weight_hh[o] @ h + bias_hh[o])",
        "h' = o * tanh(c')",
        "```",
    ]
    assert "- `weight_hr: (proj, hidden) (when proj_size > 0)`" in lines


def test_show_lstm_latex(capsys) -> None:
    out = run(capsys, "show", "lstm", "--format", "latex")
    assert out.splitlines() == [
        r"\begin{aligned}",
        r"i &= \sigma\left(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}\right) \\",
        r"f &= \sigma\left(W_{if} x + b_{if} + W_{hf} h + b_{hf}\right) \\",
        r"g &= \tanh\left(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}\right) \\",
        r"c' &= f \odot c + i \odot g \\",
        r"o &= \sigma\left(W_{io} x + b_{io} + W_{ho} h + b_{ho}\right) \\",
        r"h' &= o \odot \tanh\left(c'\right)",
        r"\end{aligned}",
    ]


def test_show_variants(capsys) -> None:
    """Peepholes: i and f read c before its update, o after it; the rendering says so."""
    peephole = run(capsys, "show", "lstm:peephole", "--format", "latex").splitlines()
    assert peephole[1].endswith(r"+ p_{i} \odot c\right) \\")
    assert peephole[5].endswith(r"+ p_{o} \odot c'\right) \\")
    gru = run(capsys, "show", "gru:reset_before").splitlines()
    assert gru[0] == "Gated recurrent unit — gru:reset_before"
    assert "  n = tanh(weight_ih[n] @ x + bias_ih[n] + weight_hh[n] @ (r * h) + bias_hh[n])" in gru
    relu = run(capsys, "show", "elman:relu", "--format", "latex").splitlines()
    assert relu[1] == r"h' &= \operatorname{relu}\left(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}\right)"


def test_show_composition(capsys) -> None:
    lines = run(capsys, "show", "composition").splitlines()
    assert lines[0] == "state index = layer * num_directions + direction"
    assert "batch_first: applies to input and output only, never to h0/h_n/c0/c_n" in lines
    assert len(lines) == 1 + len(spec.composition().rules)


def test_show_a_user_spec_file(capsys) -> None:
    out = run(capsys, "show", str(USER_SPECS / "mgu.toml"), "--format", "latex")
    assert (
        r"n &= \tanh\left(W_{in} x + b_{in} + W_{hn} \left(f \odot h\right) + b_{hn}\right) \\"
        in out
    )


def test_show_unknown_kind_is_one_line(capsys) -> None:
    assert cli.main(["show", "rnn"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "rnnspec: error: unknown cell kind 'rnn' (known: elman, gru, lstm)\n"


def test_show_unknown_format_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["show", "lstm", "--format", "html"])
    assert info.value.code == 2
    assert "invalid choice: 'html'" in capsys.readouterr().err


def test_console_script() -> None:
    executable = shutil.which("rnnspec")
    assert executable is not None, "rnnspec is not installed (pip install -e .)"
    result = subprocess.run(
        [executable, "show", "gru"], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.splitlines()[0] == "Gated recurrent unit — gru"


def _equations_text(cell: spec.Cell) -> list[str]:
    text = render.render(cell, "text").splitlines()
    start = text.index("equations (in order; primed = new value):")
    return [line.strip() for line in text[start + 1 :] if line.strip()]


TRICKY = toy(
    ('name = "toy"', 'name = "tricky"'),
    (
        EQUATION,
        "tanh(weight_ih @ x - (weight_hh @ h - 0.123456789 * h) / (2 * h) + -(h * -h) - -h)",
    ),
)


def _cells() -> list[spec.Cell]:
    shipped = [cell for loaded in spec.shipped_specs().values() for cell in loaded.cells.values()]
    user = [spec.load(path).cell() for path in sorted(USER_SPECS.glob("*.toml"))]
    return [*shipped, *user, spec.loads(TRICKY, "tricky.toml").cell()]


@pytest.mark.parametrize("cell", _cells(), ids=lambda cell: cell.name)
def test_text_rendering_parses_back_to_the_same_equations(cell: spec.Cell) -> None:
    """Parentheses and numbers survive rendering: the text is the spec, not an approximation."""
    at = Location("<rendered>", 1, 1)
    for line, equation in zip(_equations_text(cell), cell.equations, strict=True):
        target, _, source = line.partition(" = ")
        assert target.rstrip("'") == equation.target
        assert notation.parse(source.replace("'", ""), at).expr == equation.expr, line
