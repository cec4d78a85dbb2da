"""Hostile spec files: every field is data, never code, and bad input is one SpecError line.

Each probe is a small edit of tests/specs/indrnn.toml, as a colleague's spec might arrive.
Code that a spec could smuggle into the generated module touches a marker file; the tests
assert the marker never appears, whether the spec loads (text stays text) or is refused.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnspec import cli, codegen, spec
from rnnspec.errors import CodegenError, SpecError, SpecSemanticError

USER_SPECS = Path(__file__).parent / "specs"
INDRNN = (USER_SPECS / "indrnn.toml").read_text(encoding="utf-8")
SUMMARY = next(line for line in INDRNN.splitlines() if line.startswith("summary = "))
EQUATION = 'h = "relu(weight_ih @ x + bias_ih + weight_hh * h + bias_hh)"'
TANH_VARIANT = '\nequations.h = "tanh(weight_ih @ x + bias_ih + weight_hh * h + bias_hh)"\n'
ROOT = Path(__file__).resolve().parent.parent


def edited(*pairs: tuple[str, str], text: str = INDRNN) -> str:
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    return text


def with_equation(expression: str) -> str:
    return edited((EQUATION, f'h = "{expression}"'))


def touch(marker: Path) -> str:
    """Python that creates ``marker``, in single quotes so it fits a TOML basic string."""
    return f"__import__('pathlib').Path('{marker}').touch()"


def write(tmp_path: Path, text: str, name: str = "hostile.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_layer(cell: spec.Cell, backend: str) -> None:
    """Call the cell's generated layer function on zeros, as every check does."""
    from reference.cells import layer_function

    sizes = {"input": 3, "hidden": 4, "proj": 4}
    array = {"numpy": np.zeros, "torch": lambda shape: torch.zeros(shape, dtype=torch.float64)}
    zeros = array[backend]
    weights = [zeros(p.shape(sizes)) for p in cell.parameters if p.optional is None]
    state = tuple(zeros((2, sizes[s.stored_size])) for s in cell.states)
    layer_function(cell, backend)(zeros((3, 2, 3)), state, *weights)


def assert_one_line(error: SpecError, path: Path, line: int | None = None) -> None:
    message = str(error)
    assert "\n" not in message, message
    assert message.startswith(f"{path}:{'' if line is None else line}"), message
    assert "Traceback" not in message


# -- free text stays text -------------------------------------------------------------------
def free_text_probes(marker: Path) -> dict[str, tuple[str, str]]:
    """Spec text that ends its string literal in naive generated code: (spec, the text)."""
    escape = f'x""" ; {touch(marker)} ; """'
    multi_line = f'x"""\n{touch(marker)}\n"""'
    backslash = "ends in \\"
    return {
        "summary": (edited((SUMMARY, f"summary = {json.dumps(escape)}")), escape),
        "summary-newlines": (edited((SUMMARY, f"summary = {json.dumps(multi_line)}")), multi_line),
        "summary-backslash": (edited((SUMMARY, f"summary = {json.dumps(backslash)}")), backslash),
        "title": (edited(('title = "IndRNN"', f"title = {json.dumps(escape)}")), escape),
        "variant-summary": (
            INDRNN + f"\n[variants.tanh]\nsummary = {json.dumps(escape)}" + TANH_VARIANT,
            escape,
        ),
    }


@pytest.mark.parametrize("probe", list(free_text_probes(Path("m"))))
@pytest.mark.parametrize("backend", codegen.BACKENDS)
def test_free_text_reaches_the_generated_code_as_text(
    probe: str, backend: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    text, value = free_text_probes(marker)[probe]
    loaded = spec.register(spec.load(write(tmp_path, text)))
    module = codegen.load_module(loaded, backend)
    for cell in loaded.cells.values():
        run_layer(cell, backend)
        docstring = getattr(module, cell.function_name).__doc__
        if probe.startswith("title"):
            assert module.__doc__.startswith(f"{value}: reference layers")
        elif probe == "variant-summary" and cell.is_base:
            continue
        else:
            assert value in docstring
    assert not marker.exists(), "spec text ran as code"


def test_a_spec_path_that_is_code_stays_a_comment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("RNNSPEC_PWNED", raising=False)
    directory = tmp_path / "x\n__import__('os').environ.setdefault('RNNSPEC_PWNED', '1')\n#"
    directory.mkdir()
    loaded = spec.load(write(directory, INDRNN))
    for backend in codegen.BACKENDS:
        source = codegen.generate_module(loaded, backend)
        assert source.splitlines()[0].endswith("\\n#/hostile.toml")
        codegen.load_module(loaded, backend)
        run_layer(loaded.cell(), backend)
    assert "RNNSPEC_PWNED" not in os.environ, "the spec's path ran as code"


def test_diagnose_cell_file_runs_no_spec_text(tmp_path: Path, capsys) -> None:
    """``rnnspec diagnose --cell FILE``: the path every candidate declaring the cell takes."""
    marker = tmp_path / "marker"
    text, _ = free_text_probes(marker)["summary"]
    path = write(tmp_path, text)
    assert cli.main(["diagnose", "--impl", "reference", "--cell", str(path)]) == 0
    assert "passed" in capsys.readouterr().out
    assert not marker.exists(), "spec text ran as code"


# -- names are checked identifiers ----------------------------------------------------------
def name_probes(marker: Path) -> dict[str, tuple[str, str, int, int]]:
    """Names that are code: (spec, message, line, column of the name)."""
    call = f"(q={touch(marker)}) -> dict"
    return {
        "kind-call": (edited(('name = "indrnn"', f'name = "indrnn{call}"')), "kind", 4, 9),
        "variant-call": (
            INDRNN + f'\n[variants."tanh{call}"]' + TANH_VARIANT,
            "variant",
            39,
            12,
        ),
        "base-variant-call": (
            edited(('variant = "relu"', f'variant = "relu{call}"')),
            "variant",
            5,
            12,
        ),
        "kind-keyword": (edited(('name = "indrnn"', 'name = "class"')), "kind 'class'", 4, 9),
        "kind-dunder": (edited(('name = "indrnn"', 'name = "__init__"')), "kind '__init__'", 4, 9),
        # NFKC folds fullwidth letters: Python reads this identifier as `np`
        "kind-fullwidth": (edited(('name = "indrnn"', 'name = "\uff4e\uff50"')), "kind", 4, 9),
        "parameter-underscore": (
            edited(
                ("[parameters.weight_hh]", "[parameters.__class__]"), ("weight_hh *", "__class__ *")
            ),
            "parameter '__class__'",
            19,
            1,
        ),
        "variant-path": (INDRNN + '\n[variants."../x"]' + TANH_VARIANT, "variant '../x'", 39, 12),
    }


@pytest.mark.parametrize("probe", list(name_probes(Path("m"))))
def test_a_name_that_is_not_an_identifier_is_refused_at_load(probe: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    text, message, line, column = name_probes(marker)[probe]
    path = write(tmp_path, text)
    with pytest.raises(SpecSemanticError, match="is not a valid name") as info:
        spec.load(path)
    assert_one_line(info.value, path, line)
    assert info.value.location is not None and info.value.location.column == column
    assert message in info.value.message
    assert not marker.exists()


COLLISIONS = {
    "parameter-grad": (
        edited(("[parameters.weight_hh]", "[parameters.grad]"), ("weight_hh * h", "grad * h")),
        "parameter 'grad'",
        19,
    ),
    "state-torch": (
        edited(
            ('gates = ["h"]', 'gates = ["torch"]'),
            ('output = "h"', 'output = "torch"'),
            ("[state.h]", "[state.torch]"),
            (EQUATION, 'torch = "relu(weight_ih @ x + bias_ih + weight_hh * torch + bias_hh)"'),
        ),
        "state 'torch'",
        8,
    ),
    "state-enumerate": (
        edited(
            ('gates = ["h"]', 'gates = ["enumerate"]'),
            ('output = "h"', 'output = "enumerate"'),
            ("[state.h]", "[state.enumerate]"),
            (
                EQUATION,
                'enumerate = "relu(weight_ih @ x + bias_ih + weight_hh * enumerate + bias_hh)"',
            ),
        ),
        "state 'enumerate'",
        8,
    ),
    "kind-np": (edited(('name = "indrnn"', 'name = "np"')), "kind 'np'", 4),
    "kind-enumerate": (edited(('name = "indrnn"', 'name = "enumerate"')), "kind 'enumerate'", 4),
    "kind-kernels": (edited(('name = "indrnn"', 'name = "kernels"')), "kind 'kernels'", 4),
}


@pytest.mark.parametrize("probe", list(COLLISIONS))
def test_a_name_the_generated_code_needs_is_refused_at_load(probe: str, tmp_path: Path) -> None:
    text, what, line = COLLISIONS[probe]
    path = write(tmp_path, text)
    with pytest.raises(SpecSemanticError, match="collides with a name the generated code") as info:
        spec.load(path)
    assert what in info.value.message
    assert_one_line(info.value, path, line)


def test_a_colliding_spec_is_one_usage_error_of_the_conformance_run(tmp_path: Path) -> None:
    """Found once when ``--spec`` is read, not as one failure per check."""
    path = write(tmp_path, COLLISIONS["state-torch"][0])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "--impl", "reference"]
        + ["--spec", str(path), "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == [
        f"ERROR: --spec {path}: {path}:8:11: indrnn: state 'torch' collides with a name the "
        "generated code uses; rename it"
    ], result.stderr


# -- the generated module is verified before it runs -----------------------------------------
def test_a_cell_that_skipped_validation_never_runs(tmp_path: Path) -> None:
    """Defence in depth: a Cell built past the loader still cannot put code in the module."""
    marker = tmp_path / "marker"
    loaded = spec.load(USER_SPECS / "indrnn.toml")
    cell = dataclasses.replace(loaded.cell(), variant=f"x(q={touch(marker)})", is_base=False)
    forged = dataclasses.replace(loaded, cells={cell.variant: cell}, base_variant=cell.variant)
    for backend in codegen.BACKENDS:
        with pytest.raises(CodegenError, match="generated"):
            codegen.load_module(forged, backend)
    assert not marker.exists()


TAMPERED = {
    "extra-import": (
        "import numpy as np\n",
        "import numpy as np\nimport os\n",
        "unexpected statement",
    ),
    "statement-after-defs": (None, "\nprint(1)\n", "not exactly def"),
    "call-in-default": ("masks=None", "masks=print(1)", "plain signature"),
    "decorator": ("def indrnn(", "@print\ndef indrnn(", "plain signature"),
    "dunder-name": ("    outputs = []", "    outputs = __builtins__", "the name '__builtins__'"),
    "unknown-global": ("    outputs = []", "    outputs = open('f')", "unknown name 'open'"),
    "lambda": ("    outputs = []", "    outputs = [lambda: 0]", "Lambda"),
    "import-in-function": ("    outputs = []", "    import os\n    outputs = []", "Import"),
    "private-attribute": ("    outputs = []", "    outputs = x.__class__", "'__class__'"),
    "all-changed": ('__all__ = ["indrnn"]', '__all__ = ["indrnn", "x"]', "unexpected statement"),
}


@pytest.mark.parametrize("probe", list(TAMPERED))
def test_a_tampered_module_fails_verification(probe: str) -> None:
    loaded = spec.load(USER_SPECS / "indrnn.toml")
    source = codegen.generate_module(loaded, "numpy")
    old, new, message = TAMPERED[probe]
    if old is None:
        source += new
    else:
        assert old in source, old
        source = source.replace(old, new, 1)
    ast.parse(source)
    with pytest.raises(CodegenError, match=message):
        codegen.verify_module(source, loaded, codegen.NUMPY)


def test_the_shipped_modules_pass_verification() -> None:
    for loaded in spec.shipped_specs().values():
        for backend in codegen.BACKENDS:
            codegen.verify_module(
                codegen.generate_module(loaded, backend), loaded, codegen.BACKEND_BY_NAME[backend]
            )


# -- wrong types, unknown keys, limits: one line with a location ------------------------------
LIMITS = 10_000
BROKEN = {
    "shape-int": (
        edited(('shape = ["hidden", "input"]', "shape = 5")),
        16,
        "shape must be an array",
    ),
    "blocks-int": (
        edited(
            (
                'blocks = "gates"\nshape = ["hidden", "input"]',
                'blocks = 5\nshape = ["hidden", "input"]',
            )
        ),
        15,
        "blocks must be a string or an array, got int",
    ),
    "blocks-array-of-int": (
        edited(
            (
                'blocks = "gates"\nshape = ["hidden", "input"]',
                'blocks = [1]\nshape = ["hidden", "input"]',
            )
        ),
        15,
        "blocks must be an array of strings",
    ),
    "state-int": (
        edited(('[state.h]\nsize = "hidden"', "[state]\nh = 5")),
        12,
        "[state.h] must be a table",
    ),
    "parameter-int": (
        edited(("[parameters.weight_ih]", "[parameters]\nbias_x = 3\n\n[parameters.weight_ih]")),
        15,
        "[parameters.bias_x] must be a table, got int",
    ),
    "variant-int": (INDRNN + "\n[variants]\nv = 5\n", 40, "[variants.v] must be a table"),
    "torch-unknown-key": (
        edited(('output = "h"', 'output = "h"\ntorch = { module = "RNN", bogus = 1 }')),
        10,
        "unknown key 'bogus' in [cell.torch] (known: module, nonlinearity)",
    ),
    "torch-without-module": (
        edited(('output = "h"', 'output = "h"\ntorch = { nonlinearity = "relu" }')),
        10,
        "torch needs 'module'",
    ),
    "torch-string": (
        edited(('output = "h"', 'output = "h"\ntorch = "RNN"')),
        10,
        "torch must be a table",
    ),
    "summary-list": (
        edited((SUMMARY, 'summary = ["a", "b"]')),
        7,
        "summary must be a string, got an array",
    ),
    "title-int": (edited(('title = "IndRNN"', "title = 5")), 6, "title must be a string"),
    "summary-escape-code": (
        edited((SUMMARY, 'summary = "\\u001b[2J"')),
        7,
        "control character '\\x1b'",
    ),
    "summary-too-long": (edited((SUMMARY, f'summary = "{"s" * LIMITS}"')), 7, "longer than 1000"),
    "bias-string": (edited(("bias = true", 'bias = "no"')), 27, "bias must be true or false"),
    "unknown-cell-key": (
        edited(('output = "h"', 'output = "h"\nbogus = 1')),
        10,
        "unknown key 'bogus' in [cell]",
    ),
    "unknown-parameter-key": (
        edited(('symbol = "W_{ih}"', 'symbol = "W_{ih}"\nbais = true')),
        18,
        "unknown key 'bais' in [parameters.weight_ih]",
    ),
    "unknown-table": (INDRNN + "\n[bogus]\na = 1\n", 39, "unknown key 'bogus' in the top level"),
    "gate-twice": (edited(('gates = ["h"]', 'gates = ["h", "h"]')), 8, "gate 'h' is listed twice"),
    "sum-490": (
        with_equation("weight_ih @ x + weight_hh * h + bias_ih + bias_hh" + " + h" * 490),
        37,
        "equation is longer than 1000 characters",
    ),
    "sum-100": (
        with_equation("weight_ih @ x + weight_hh * h + bias_ih + bias_hh" + "+h" * 100),
        37,
        "equation nested more than 64 levels",
    ),
    "minus-10000": (with_equation("-" * LIMITS + "h"), 37, "longer than 1000 characters"),
    "minus-900": (with_equation("-" * 900 + "h"), 37, "nested more than 64 levels"),
    "parentheses-300": (with_equation("(" * 300 + "h" + ")" * 300), 37, "cannot parse equation"),
    "integer-400-digits": (
        with_equation("9" * 400 + " * h"),
        37,
        "is too large (not a finite float)",
    ),
    "float-1e999": (with_equation("1e999 * h"), 37, "is too large (not a finite float)"),
    "nested-toml": (
        INDRNN + "\n[x]\na = " + "[" * LIMITS + "]" * LIMITS + "\n",
        1,
        "nested too deeply",
    ),
    "nested-inline-tables": (
        INDRNN + "\n[x]\na = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n",
        1,
        "nested too deeply",
    ),
}


@pytest.mark.parametrize("probe", list(BROKEN))
def test_a_broken_spec_is_one_spec_error_line(probe: str, tmp_path: Path, capsys) -> None:
    text, line, message = BROKEN[probe]
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        spec.load(path)
    assert message in info.value.message
    assert_one_line(info.value, path, line)
    assert cli.main(["show", str(path)]) == 2
    assert capsys.readouterr().err == f"rnnspec: error: {info.value}\n"


def test_an_integer_constant_beyond_float_precision_is_written_as_a_float(tmp_path: Path) -> None:
    """An exact integer literal of 300 digits would overflow NumPy's int conversion."""
    loaded = spec.load(
        write(
            tmp_path,
            with_equation(
                "relu(weight_ih @ x + bias_ih + weight_hh * h + bias_hh + 1e300 * 0 * h)"
            ),
        )
    )
    assert "1e+300" in codegen.generate_module(loaded, "numpy")
    run_layer(loaded.cell(), "numpy")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["dev-zero", "directory", "fifo", "oversized", "not-utf8"])
def test_a_spec_file_that_is_not_a_small_text_file_is_refused_unread(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "spec.toml"
    if kind == "dev-zero":
        path = Path("/dev/zero")
        if not path.exists():
            pytest.skip("no /dev/zero")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # reading would wait forever for a writer
    elif kind == "oversized":
        path.write_text(INDRNN + "#" * spec.MAX_SPEC_BYTES + "\n", encoding="utf-8")
    else:
        path.write_bytes(b"\xff\xfe[cell]\n")
    reason = {
        "oversized": "more than the limit of",
        "not-utf8": "not UTF-8 text",
    }.get(kind, "not a regular file")
    with pytest.raises(SpecError, match=reason) as info:
        spec.load(path)
    assert str(info.value).startswith(f"cannot read spec file {path}: ")
    assert "\n" not in str(info.value)


# -- registration ----------------------------------------------------------------------------
def test_a_kind_registered_twice_with_other_content_is_refused(tmp_path: Path) -> None:
    first = spec.register(spec.load(write(tmp_path, INDRNN, "first.toml")))
    assert spec.register(spec.load(write(tmp_path, INDRNN, "same.toml"))) is not None
    assert spec.all_specs()["indrnn"] is first
    other = write(tmp_path, edited(('title = "IndRNN"', 'title = "Other"')), "other.toml")
    with pytest.raises(SpecSemanticError, match="already registered from .*first.toml"):
        spec.register(spec.load(other))
    assert spec.all_specs()["indrnn"] is first


# -- rnnspec generate --out writes only inside DIR -------------------------------------------
def generate(capsys, out: Path) -> tuple[int, str]:
    code = cli.main(["generate", "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.err


def test_generate_does_not_follow_a_directory_link_out_of_out(tmp_path: Path, capsys) -> None:
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    out.mkdir()
    (out / "numpy").symlink_to(outside)
    code, err = generate(capsys, out)
    assert code == 2
    assert err == f"rnnspec: error: refusing to write through the symbolic link {out / 'numpy'}\n"
    assert list(outside.iterdir()) == []


def test_generate_does_not_follow_a_file_link_out_of_out(tmp_path: Path, capsys) -> None:
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    (out / "numpy").mkdir(parents=True)
    link = out / "numpy" / "lstm.py"
    link.symlink_to(outside / "target.py")
    code, err = generate(capsys, out)
    assert code == 2
    assert err == f"rnnspec: error: refusing to write through the symbolic link {link}\n"
    assert list(outside.iterdir()) == []
    assert link.is_symlink()


def test_generate_into_a_file_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "file"
    out.write_text("mine\n", encoding="utf-8")
    code, err = generate(capsys, out)
    assert code == 2
    assert err == f"rnnspec: error: cannot write {out}: not a directory\n"
    assert out.read_text(encoding="utf-8") == "mine\n"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anyway")
def test_generate_into_a_read_only_directory_is_one_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = generate(capsys, out)
    finally:
        out.chmod(0o755)
    assert code == 2
    assert err.startswith(f"rnnspec: error: cannot write {out}") and err.count("\n") == 1, err


def test_generate_reports_a_refused_write_as_one_line(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same OSError a read-only directory gives a user who is not root."""

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    code, err = generate(capsys, tmp_path / "out")
    assert code == 2
    assert err.startswith(f"rnnspec: error: cannot write {tmp_path / 'out'}"), err
    assert err.endswith(": Permission denied\n") and err.count("\n") == 1, err
    assert [path.name for path in (tmp_path / "out").rglob("*") if path.is_file()] == []
