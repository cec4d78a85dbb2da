"""Spec files: the shipped ones load and resolve; a wrong one fails at file:line:column.

Each broken spec below is a small edit of a valid one. The error must be a SpecError
(a ValueError) whose message starts with the location of the offending text, and
``rnnspec show FILE`` must print exactly that one line and exit 2.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnspec import cli, spec
from rnnspec.errors import Location, RnnSpecError, SpecError, SpecSemanticError, SpecSyntaxError

TOY = """\
[cell]
name = "toy"
gates = ["h"]

[state.h]
size = "hidden"

[parameters.weight_ih]
blocks = "gates"
shape = ["hidden", "input"]

[parameters.weight_hh]
blocks = "gates"
shape = ["hidden", "hidden"]

[equations]
h = "tanh(weight_ih @ x + weight_hh @ h)"
"""
# Line 17 holds the equation; its text starts at column 6.
EQUATION = "tanh(weight_ih @ x + weight_hh @ h)"
LSTM = (spec.SPECS_DIR / "lstm.toml").read_text(encoding="utf-8")


def replaced(text: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def toy(*pairs: tuple[str, str]) -> str:
    return replaced(TOY, *pairs)


def lstm_equation(gate: str, old: str, new: str) -> str:
    line = next(line for line in LSTM.splitlines() if line.startswith(f"{gate} = "))
    return replaced(LSTM, (line, line.replace(old, new)))


def position(text: str, fragment: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of ``fragment`` in ``text``."""
    index = text.index(fragment)
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)


@dataclass(frozen=True)
class Bad:
    """A broken spec, the error it must raise, where, and a fragment of the message."""

    id: str
    text: str
    error: type[SpecError]
    line: int
    column: int
    message: str


def _lstm_bad(
    id: str, gate: str, old: str, new: str, at: str, message: str, error: type[SpecError]
) -> Bad:
    """lstm.toml with ``old`` replaced by ``new`` in ``gate``'s equation; the error points
    at the first ``at`` on that line."""
    text = lstm_equation(gate, old, new)
    lines = text.splitlines()
    number = next(n for n, line in enumerate(lines, 1) if line.startswith(f"{gate} = "))
    return Bad(id, text, error, number, lines[number - 1].index(at) + 1, message)


SEMANTIC, SYNTAX = SpecSemanticError, SpecSyntaxError
BAD = [
    Bad("toml-syntax", toy(('name = "toy"', 'name = "toy')), SYNTAX, 2, 12, "invalid TOML"),
    Bad("toml-duplicate-key", TOY + 'h = "h"\n', SYNTAX, 18, 8, "invalid TOML: Cannot overwrite"),
    Bad(
        "unparseable-equation",
        toy((EQUATION, "tanh(weight_ih @ x + )")),
        SYNTAX,
        17,
        27,
        "cannot parse equation 'tanh(weight_ih @ x + )': invalid syntax",
    ),
    Bad(
        "import",
        toy((EQUATION, "__import__('os')")),
        SYNTAX,
        17,
        6,
        "unknown function '__import__'",
    ),
    Bad(
        "import-attribute-call",
        toy((EQUATION, "__import__('os').system('true')")),
        SYNTAX,
        17,
        6,
        "a call must be name(arg, ...) without keywords",
    ),
    Bad(
        "attribute",
        toy((EQUATION, "tanh(weight_ih @ x + weight_hh @ h.T)")),
        SYNTAX,
        17,
        39,
        "Attribute is not allowed",
    ),
    Bad("lambda", toy((EQUATION, "tanh(lambda: x)")), SYNTAX, 17, 11, "Lambda is not allowed"),
    Bad(
        "unknown-symbol",
        toy((EQUATION, "tanh(weight_ih @ x + weight_hh @ q)")),
        SEMANTIC,
        17,
        39,
        "toy: h = tanh(weight_ih @ x + weight_hh @ q): unknown symbol 'q'",
    ),
    Bad(
        "unknown-function",
        toy((EQUATION, "softsign(weight_ih @ x + weight_hh @ h)")),
        SYNTAX,
        17,
        6,
        "unknown function 'softsign' (known: hard_sigmoid, identity, relu, sigmoid, tanh)",
    ),
    Bad(
        "shape-toy",
        toy((EQUATION, "tanh(weight_ih @ h + weight_hh @ h)")),
        SEMANTIC,
        17,
        11,
        "shapes do not agree for @: ('hidden', 'input') @ ('hidden',)",
    ),
    _lstm_bad(
        "shape-lstm-input-weight-on-h",
        "i",
        "weight_ih[i] @ x",
        "weight_ih[i] @ h",
        "weight_ih[i] @ h",
        "shapes do not agree for @: ('hidden', 'input') @ ('proj',)",
        SEMANTIC,
    ),
    _lstm_bad(
        "shape-lstm-elementwise",
        "o",
        "bias_hh[o])",
        "bias_hh[o] + x)",
        "weight_ih[o] @ x",
        "shapes do not agree for +: ('hidden',) + ('input',)",
        SEMANTIC,
    ),
    _lstm_bad(
        "state-size",
        "h",
        "o * tanh(c)",
        "weight_hr @ c",
        "weight_hr @ c",
        "state 'h' has size 'hidden', the equation gives 'proj'",
        SEMANTIC,
    ),
    _lstm_bad(
        "stacked-without-gate",
        "f",
        "weight_ih[f] @ x",
        "weight_ih @ x",
        "weight_ih @ x",
        "'weight_ih' is stacked; index it by gate, e.g. weight_ih[i]",
        SEMANTIC,
    ),
    _lstm_bad(
        "unknown-block",
        "g",
        "bias_hh[g]",
        "bias_hh[z]",
        "bias_hh[z]",
        "'bias_hh' has no block 'z' (blocks: i, f, g, o)",
        SEMANTIC,
    ),
    _lstm_bad(
        "gate-used-before-assigned",
        "c",
        "f * c + i * g",
        "f * c + i * o",
        'o"',
        "unknown symbol 'o' (or used before it is assigned)",
        SEMANTIC,
    ),
    Bad(
        "state-never-updated",
        toy(('size = "hidden"\n', 'size = "hidden"\n\n[state.c]\nsize = "hidden"\n')),
        SEMANTIC,
        19,
        1,
        "toy: state 'c' is never updated",
    ),
    Bad(
        "gate-never-assigned",
        toy(('gates = ["h"]', 'gates = ["h", "z"]'), ('blocks = "gates"', 'blocks = ["h"]')),
        SEMANTIC,
        16,
        1,
        "toy: gate 'z' is never updated",
    ),
    Bad(
        "unused-parameter",
        TOY + '\n[parameters.bias_x]\nshape = ["hidden"]\n',
        SEMANTIC,
        19,
        1,
        "toy: parameter 'bias_x' is never used",
    ),
    Bad(
        "input-never-used",
        toy(
            ('[parameters.weight_ih]\nblocks = "gates"\nshape = ["hidden", "input"]\n\n', ""),
            (EQUATION, "tanh(weight_hh @ h)"),
        ),
        SEMANTIC,
        12,
        1,
        "toy: the input 'x' is never used",
    ),
    Bad(
        "assign-parameter",
        TOY + 'weight_hh = "h"\n',
        SEMANTIC,
        18,
        14,
        "cannot assign to 'weight_hh': it is an input or a parameter",
    ),
    Bad(
        "not-a-vector",
        toy((EQUATION, "weight_hh")),
        SEMANTIC,
        17,
        6,
        "the result must be a vector, got shape ('hidden', 'hidden')",
    ),
    Bad(
        "keyword-gate",
        toy(('gates = ["h"]', 'gates = ["h", "if"]'), ('blocks = "gates"', 'blocks = ["h"]')),
        SEMANTIC,
        3,
        16,
        "toy: gate 'if' is not a valid name",
    ),
    Bad(
        "dashed-target",
        toy(('h = "', 'my-gate = "weight_hh @ h"\nh = "')),
        SEMANTIC,
        17,
        12,
        "toy: equation target 'my-gate' is not a valid name",
    ),
    Bad(
        "missing-cell",
        toy(('[cell]\nname = "toy"\ngates = ["h"]\n\n', "")),
        SEMANTIC,
        1,
        1,
        "missing table [cell]",
    ),
    Bad("misspelt-cell", toy(("[cell]", "[sell]")), SEMANTIC, 1, 1, "unknown key 'sell'"),
    Bad("missing-name", toy(('name = "toy"\n', "")), SEMANTIC, 1, 1, "[cell] needs 'name'"),
    Bad(
        "state-size-unknown",
        toy(('size = "hidden"', 'size = "huge"')),
        SEMANTIC,
        5,
        1,
        "state 'h' needs size one of ('input', 'hidden', 'proj'), got 'huge'",
    ),
    Bad(
        "parameter-shape-unknown",
        toy(('shape = ["hidden", "input"]', 'shape = ["hidden", "banana"]')),
        SEMANTIC,
        8,
        1,
        "parameter 'weight_ih' needs 'shape'",
    ),
    Bad(
        "blocks-not-gates",
        toy(
            (
                'blocks = "gates"\nshape = ["hidden", "input"]',
                'blocks = ["q"]\nshape = ["hidden", "input"]',
            )
        ),
        SEMANTIC,
        8,
        1,
        "parameter 'weight_ih' has blocks ['q'] that are not gates",
    ),
    Bad(
        "output-not-a-state",
        toy(('gates = ["h"]', 'gates = ["h"]\noutput = "y"')),
        SEMANTIC,
        17,
        1,
        "toy: output 'y' is not a state",
    ),
    Bad(
        "variant-equation",
        TOY + '\n[variants.fast]\nequations.h = "relu(weight_ih @ x + weight_hh @ q)"\n',
        SEMANTIC,
        20,
        49,
        "toy:fast: h = relu(weight_ih @ x + weight_hh @ q): unknown symbol 'q'",
    ),
    Bad(
        "leading-whitespace",
        toy((EQUATION, "  tanh(weight_ih @ x + weight_hh @ q)")),
        SEMANTIC,
        17,
        41,
        "unknown symbol 'q'",
    ),
    Bad(
        "multi-line-equation",
        toy((f'"{EQUATION}"', '"""\ntanh(weight_ih @ x\n     + weight_hh @ q)"""')),
        SEMANTIC,
        19,
        20,
        "toy: h = tanh(weight_ih @ x + weight_hh @ q): unknown symbol 'q'",
    ),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("bad", BAD, ids=[bad.id for bad in BAD])
def test_bad_spec_error_location(bad: Bad, tmp_path: Path) -> None:
    path = write(tmp_path, bad.text)
    with pytest.raises(SpecError) as info:
        spec.load(path)
    error = info.value
    assert type(error) is bad.error, str(error)
    assert isinstance(error, ValueError) and isinstance(error, RnnSpecError)
    assert error.location == Location(path, bad.line, bad.column), str(error)
    assert str(error).startswith(f"{path}:{bad.line}:{bad.column}: "), str(error)
    assert bad.message in error.message
    assert "\n" not in str(error)


@pytest.mark.parametrize("bad", BAD, ids=[bad.id for bad in BAD])
def test_show_bad_spec_prints_one_line(bad: Bad, tmp_path: Path, capsys) -> None:
    path = write(tmp_path, bad.text)
    assert cli.main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"rnnspec: error: {path}:{bad.line}:{bad.column}: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_valid_toy_loads() -> None:
    loaded = spec.loads(TOY, "toy.toml")
    cell = loaded.cell()
    assert (loaded.kind, loaded.base_variant, cell.name, cell.gates) == (
        "toy",
        "default",
        "toy",
        ("h",),
    )
    assert loaded.digest == hashlib.sha256(TOY.encode()).hexdigest()
    assert [eq.target for eq in cell.equations] == ["h"]
    assert cell.equations[0].location == Location(Path("toy.toml"), 17, 6)


def test_spec_text_is_never_evaluated(no_eval: None, tmp_path: Path) -> None:
    """Loading runs no Python from the file; an equation with a side effect is rejected."""
    for path in spec.shipped_spec_paths():
        spec.load(path)
    sentinel = tmp_path / "evaluated"
    for equation in (
        f"__import__('os').system('touch {sentinel}')",
        f"tanh(weight_ih @ x + open('{sentinel}', 'w'))",
    ):
        text = toy((f'h = "{EQUATION}"', f'h = "{equation}"'))
        with pytest.raises(SpecSyntaxError) as info:
            spec.loads(text, "evil.toml")
        assert info.value.location is not None and info.value.location.line == 17
    assert not sentinel.exists()


# The shipped specs.


def test_shipped_specs_and_variants() -> None:
    variants = {kind: list(loaded.cells) for kind, loaded in spec.shipped_specs().items()}
    assert variants == {
        "elman": ["tanh", "relu"],
        "gru": ["reset_after", "reset_before"],
        "lstm": ["default", "peephole", "coupled"],
    }
    for path in spec.shipped_spec_paths():
        loaded = spec.shipped_specs()[spec.load(path).kind]
        assert loaded.digest == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("name", "gates", "states", "torch_module"),
    [
        ("elman", ("h",), ("h",), ("RNN", "tanh")),
        ("elman:relu", ("h",), ("h",), ("RNN", "relu")),
        ("gru", ("r", "z", "n"), ("h",), ("GRU", None)),
        ("gru:reset_before", ("r", "z", "n"), ("h",), None),
        ("lstm", ("i", "f", "g", "o"), ("h", "c"), ("LSTM", None)),
        ("lstm:peephole", ("i", "f", "g", "o"), ("h", "c"), None),
        ("lstm:coupled", ("i", "g", "o"), ("h", "c"), None),
    ],
)
def test_resolve(name: str, gates: tuple, states: tuple, torch_module: tuple | None) -> None:
    cell = spec.resolve(name)
    assert cell.name == name
    assert cell.gates == gates
    assert tuple(state.name for state in cell.states) == states
    equivalent = (cell.torch.module, cell.torch.nonlinearity) if cell.torch else None
    assert equivalent == torch_module
    assert cell.function_name == name.replace(":", "_")


def test_lstm_parameters() -> None:
    cell = spec.resolve("lstm")
    sizes = {"input": 5, "hidden": 4, "proj": 3}
    shapes = {param.name: param.shape(sizes) for param in cell.parameters}
    assert shapes == {
        "weight_ih": (16, 5),
        "weight_hh": (16, 3),
        "bias_ih": (16,),
        "bias_hh": (16,),
        "weight_hr": (3, 4),
    }
    active = [param.name for param in cell.active_parameters(bias=False, proj=False)]
    assert active == ["weight_ih", "weight_hh"]
    assert cell.supports_proj and not spec.resolve("gru").supports_proj
    peephole = spec.resolve("lstm:peephole").parameter("weight_peephole")
    assert peephole.blocks == ("i", "f", "o") and peephole.shape(sizes) == (12,)


def test_variant_equation_locations() -> None:
    relu = spec.resolve("elman:relu").equations[0]
    path = spec.SPECS_DIR / "elman.toml"
    assert relu.location == Location(path, *position(path.read_text(), "relu(weight_ih"))
    tanh = spec.resolve("elman").equations[0]
    assert tanh.location == Location(path, *position(path.read_text(), "tanh(weight_ih"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("rnn", "unknown cell kind 'rnn' (known: elman, gru, lstm)"),
        ("gru:reset_sometimes", "spec 'gru' has no variant 'reset_sometimes'"),
    ],
)
def test_resolve_unknown(name: str, message: str) -> None:
    with pytest.raises(SpecSemanticError, match=re.escape(message)):
        spec.resolve(name)


def test_resolve_a_path(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(TOY, encoding="utf-8")
    assert spec.resolve(str(path)).name == "toy"
    assert spec.resolve(str(path)).path == path


def test_resolve_a_path_reuses_the_file_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(TOY, encoding="utf-8")
    first = spec.resolve(str(path))
    assert spec.resolve(str(path)) is first
    path.write_text(TOY.replace('name = "toy"', 'name = "toy"\ntitle = "Changed"'), "utf-8")
    assert spec.resolve(str(path)).title == "Changed"


def test_composition_state_index() -> None:
    composition = spec.composition()
    assert composition.state_index_source == "layer * num_directions + direction"
    indices = [composition.index(layer, d, 2) for layer in range(3) for d in range(2)]
    assert indices == list(range(6))
    assert "batch_first" in composition.rules


# conftest's no_leaked_specs undoes every registration after the test.


def test_register_a_user_spec(tmp_path: Path) -> None:
    path = tmp_path / "toy.toml"
    path.write_text(TOY, encoding="utf-8")
    spec.register(spec.load(path))
    assert spec.resolve("toy").path == path
    assert "toy" in spec.all_specs()


def test_register_cannot_shadow_a_shipped_kind() -> None:
    impostor = LSTM + "\n# changed\n"
    with pytest.raises(SpecSemanticError, match="kind 'lstm' is already a shipped spec"):
        spec.register(spec.loads(impostor, "lstm.toml"))
    spec.register(spec.load(spec.SPECS_DIR / "lstm.toml"))  # the same file is fine
