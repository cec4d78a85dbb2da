"""The code generator: golden files, staleness, headers, hoisting, and what the code computes.

The generated layer functions are checked against a tiny interpreter of the spec's
expression trees (below), written without the generator's planning: any cell a spec can
describe must compute what its equations say.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reference
from reference.cells import layer_function
from rnnspec import cli, codegen, spec
from rnnspec.compare import compare
from rnnspec.errors import CodegenError, SpecSemanticError
from rnnspec.notation import Block, Call, Expr, Name, Neg, Number
from rnnspec.tolerance import FLOOR, Tolerance

REFERENCE_DIR = Path(reference.__file__).resolve().parent
USER_SPECS = Path(__file__).parent / "specs"
SHIPPED_CELLS = [cell for loaded in spec.shipped_specs().values() for cell in loaded.cells.values()]
BACKENDS = codegen.BACKENDS
EXACT = Tolerance(atol=FLOOR, rtol=0.0)  # the same float64 math, in another order


def test_generate_check_passes_on_the_repository(capsys) -> None:
    assert cli.main(["generate", "--check"]) == 0
    assert capsys.readouterr().out == "reference/ is up to date\n"


def test_shipped_files_are_the_generated_ones() -> None:
    """Golden files: reference/{numpy,torch}/*.py are exactly what the generator writes."""
    expected = codegen.expected_files(spec.shipped_specs(), REFERENCE_DIR)
    on_disk = {path for backend in BACKENDS for path in (REFERENCE_DIR / backend).glob("*.py")}
    assert on_disk == set(expected)
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} differs; run rnnspec generate"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", SHIPPED_CELLS, ids=[cell.name for cell in SHIPPED_CELLS])
def test_references_run_the_shipped_files(cell: spec.Cell, backend: str) -> None:
    """reference.gold and reference.nn (and so the parity tests) execute the golden files."""
    function = layer_function(cell, backend)
    module = sys.modules[function.__module__]
    assert module.__name__ == f"reference.{backend}.{cell.kind}"
    assert Path(module.__file__).resolve() == REFERENCE_DIR / backend / f"{cell.kind}.py"
    assert module.__all__ == [
        c.function_name for c in spec.shipped_specs()[cell.kind].cells.values()
    ]


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*.py")}


def test_generation_is_deterministic(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert cli.main(["generate", "--out", str(first)]) == 0
    assert cli.main(["generate", "--out", str(second)]) == 0
    assert _all_files(first) == _all_files(second)
    assert len(_all_files(first)) == 2 * (len(spec.shipped_specs()) + 1)
    capsys.readouterr()
    assert cli.main(["generate", "--out", str(first)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{len(_all_files(first))} file(s) already up to date"
    ]


def test_generation_does_not_depend_on_hash_seed() -> None:
    script = (
        "import hashlib; from pathlib import Path; from rnnspec import codegen, spec;"
        "files = codegen.expected_files(spec.shipped_specs(), Path('out'));"
        "print(hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_stale_file_is_detected_and_rewritten(tmp_path: Path, capsys) -> None:
    out = tmp_path / "reference"
    assert cli.main(["generate", "--out", str(out)]) == 0
    assert cli.main(["generate", "--check", "--out", str(out)]) == 0
    edited, removed = out / "torch" / "gru.py", out / "numpy" / "lstm.py"
    original = edited.read_text(encoding="utf-8")
    edited.write_text(original.replace("torch.tanh", "torch.sigmoid", 1), encoding="utf-8")
    removed.unlink()
    capsys.readouterr()
    assert cli.main(["generate", "--check", "--out", str(out)]) == 1
    report = capsys.readouterr().out.splitlines()
    assert sorted(report[:-1]) == sorted([f"stale: {edited}", f"stale: {removed}"])
    assert report[-1] == "2 stale file(s); run `rnnspec generate`"
    assert edited.read_text(encoding="utf-8") != original  # --check writes nothing
    assert cli.main(["generate", "--out", str(out)]) == 0
    assert sorted(capsys.readouterr().out.splitlines()[:-1]) == sorted(
        [f"wrote {edited}", f"wrote {removed}"]
    )
    assert edited.read_text(encoding="utf-8") == original
    assert cli.main(["generate", "--check", "--out", str(out)]) == 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", sorted(spec.shipped_specs()))
def test_header(kind: str, backend: str) -> None:
    path = REFERENCE_DIR / backend / f"{kind}.py"
    source = spec.SPECS_DIR / f"{kind}.toml"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert path.read_text(encoding="utf-8").splitlines()[:3] == [
        f"# Generated by rnnspec.codegen ({backend} backend) from rnnspec/specs/{kind}.toml",
        f"# spec sha256: {digest}",
        "# Do not edit; regenerate with `rnnspec generate`.",
    ]
    package = (REFERENCE_DIR / backend / "__init__.py").read_text(encoding="utf-8")
    assert package.startswith(
        "# Generated by rnnspec.codegen. Do not edit; regenerate with `rnnspec generate`.\n"
    )


def _functions(source: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(source)
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _user_and_shipped_cells() -> list[spec.Cell]:
    user = [spec.load(path).cell() for path in sorted(USER_SPECS.glob("*.toml"))]
    return [*SHIPPED_CELLS, *user]


HOISTED = _user_and_shipped_cells()


def hoisting_problems(source: str, function_name: str) -> list[str]:
    """Why ``function_name`` does not compute W_ih x for every step in one product before
    its loop; empty when it does."""
    function = _functions(source)[function_name]
    loops = [index for index, node in enumerate(function.body) if isinstance(node, ast.For)]
    if len(loops) != 1:
        return [f"{len(loops)} loops"]
    before, loop = function.body[: loops[0]], function.body[loops[0]]
    projections = [
        ast.unparse(node.value)
        for node in before
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "x_proj"
    ]
    problems = []
    if not any("x.reshape(-1, x.shape[-1])" in p and "weight_ih" in p for p in projections):
        problems.append("no x_proj = (all steps of x) @ weight_ih before the loop")
    in_loop = {node.id for node in ast.walk(loop) if isinstance(node, ast.Name)}
    inputs = sorted(n for n in in_loop if n in ("x", "x_t") or "weight_ih" in n)
    problems += [f"the loop reads {name}" for name in inputs]
    return problems


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", HOISTED, ids=[cell.name for cell in HOISTED])
def test_input_projection_is_hoisted(cell: spec.Cell, backend: str) -> None:
    """One matrix product over every step before the loop; the loop never touches W_ih or x."""
    source = codegen.generate_module(spec.load(cell.path), backend)
    assert hoisting_problems(source, cell.function_name) == []
    text = source[source.index(f"def {cell.function_name}(") :]
    assert text.index("    x_proj = ") < text.index("    for t, x_proj_t in ")


def test_gates_out_of_stacking_order_are_still_hoisted() -> None:
    loaded = spec.loads(SYNTHETIC["gates-out-of-order"], "unordered.toml")
    assert hoisting_problems(codegen.generate_module(loaded, "torch"), "unordered") == []


def test_hoisting_check_catches_a_per_step_projection() -> None:
    """An input used inside a larger operand cannot be hoisted: the loop reads it per step."""
    loaded = spec.loads(SYNTHETIC["input-inside-an-operand"], "scaled.toml")
    source = codegen.generate_module(loaded, "torch")
    assert hoisting_problems(source, "scaled") == [
        "no x_proj = (all steps of x) @ weight_ih before the loop",
        "the loop reads times_weight_ih",
        "the loop reads x",
        "the loop reads x_t",
    ]


def test_a_target_named_like_a_generated_local_is_refused_at_load() -> None:
    with pytest.raises(SpecSemanticError, match="'hidden' collides with a name the generated code"):
        spec.loads(COLLISION, "collision.toml")


@pytest.mark.parametrize("name", ["grad", "kernels", "times_weight_hh", "weight_hh_t", "enumerate"])
def test_a_parameter_named_like_a_generated_local_is_refused_at_load(name: str) -> None:
    text = _synthetic(
        "clash", '["h"]', _B + _param(name, '["hidden"]', blocks="[]"), _gate("h", "tanh")
    )
    text = text.replace('bias_hh[h])"', f'bias_hh[h]) * {name}"')
    with pytest.raises(SpecSemanticError, match=f"parameter '{name}' collides with a name"):
        spec.loads(text, "clash.toml")


def test_the_generator_refuses_a_colliding_cell_that_skipped_the_loader() -> None:
    loaded = spec.load(USER_SPECS / "mgu.toml")
    cell = loaded.cell()
    renamed = replace(
        cell, parameters=(replace(cell.parameters[0], name="grad"), *cell.parameters[1:])
    )
    forged = replace(loaded, cells={loaded.base_variant: renamed})
    with pytest.raises(CodegenError, match="parameter 'grad' collides with a name"):
        codegen.generate_module(forged, "torch")


def test_in_memory_modules_show_their_source_in_tracebacks() -> None:
    loaded = spec.load(USER_SPECS / "mgu.toml")
    module = codegen.load_module(loaded, "numpy")
    function = module.mgu
    first = function.__code__.co_firstlineno
    assert linecache.getline(module.__file__, first).startswith("def mgu(x, state,")
    assert linecache.getline(module.__file__, 1).startswith("# Generated by rnnspec.codegen")


def test_a_reserved_local_as_a_target_is_refused_at_load() -> None:
    text = (spec.SPECS_DIR / "elman.toml").read_text(encoding="utf-8")
    text = text.replace('h = "tanh(', 'outputs = "weight_hh @ h"\nh = "tanh(outputs + ')
    with pytest.raises(
        SpecSemanticError, match="'outputs' collides with a name the generated code"
    ):
        spec.loads(text, "elman.toml")


# An independent interpreter of the spec's equations, one time step at a time.

_FUNCTIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "tanh": np.tanh,
    "relu": lambda v: np.maximum(v, 0.0),
    "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0),
    "identity": lambda v: v,
}
_OPERATORS = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


def interpret(
    cell: spec.Cell,
    x: np.ndarray,
    state: tuple[np.ndarray, ...],
    weights: dict[str, np.ndarray],
    masks: np.ndarray,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Run ``cell``'s equations in order for each step; vectors are (B, size) rows."""
    params = {param.name: param for param in cell.parameters}

    def block(name: str, gate: str | None) -> np.ndarray:
        param, value = params[name], weights[name]
        if not param.stacked:
            return value
        rows = value.shape[0] // len(param.blocks)
        index = param.blocks.index(gate or param.blocks[0])
        return value[index * rows : (index + 1) * rows]

    def value(expr: Expr, env: dict[str, np.ndarray]) -> Any:
        if isinstance(expr, Number):
            return expr.value
        if isinstance(expr, Name):
            return env[expr.id] if expr.id in env else block(expr.id, None)
        if isinstance(expr, Block):
            return block(expr.param, expr.gate)
        if isinstance(expr, Neg):
            return -value(expr.operand, env)
        if isinstance(expr, Call):
            return _FUNCTIONS[expr.func](value(expr.args[0], env))
        left, right = value(expr.left, env), value(expr.right, env)
        return right @ left.T if expr.op == "@" else _OPERATORS[expr.op](left, right)

    names = [s.name for s in cell.states]
    current = dict(zip(names, state, strict=True))
    outputs = []
    for t in range(x.shape[0]):
        env = {"x": x[t], **current}
        for equation in cell.equations:
            env[equation.target] = value(equation.expr, env)
        for s in cell.states:
            if s.projection and s.projection in weights:
                env[s.name] = env[s.name] @ weights[s.projection].T
        outputs.append(np.where(masks[t], env[cell.output], 0.0))
        current = {name: np.where(masks[t], env[name], current[name]) for name in names}
    return np.stack(outputs), tuple(current[name] for name in names)


_HEAD = '[cell]\nname = "{name}"\ngates = {gates}\n\n[state.h]\nsize = "hidden"\n\n'


def _param(name: str, shape: str, blocks: str = '"gates"', bias: bool = False) -> str:
    flag = "bias = true\n" if bias else ""
    return f"[parameters.{name}]\nblocks = {blocks}\nshape = {shape}\n{flag}\n"


_W_IH = _param("weight_ih", '["hidden", "input"]')
_W_HH = _param("weight_hh", '["hidden", "hidden"]')
_B_IH = _param("bias_ih", '["hidden"]', bias=True)
_B_HH = _param("bias_hh", '["hidden"]', bias=True)


def _synthetic(name: str, gates: str, params: str, equations: str) -> str:
    return _HEAD.format(name=name, gates=gates) + params + "[equations]\n" + equations


# Specs that take the generator off the well-trodden path of the shipped cells.
SYNTHETIC = {
    "one-bias": _synthetic(
        "one_bias",
        '["h"]',
        _W_IH + _W_HH + _B_IH,
        'h = "tanh(weight_ih @ x + bias_ih + weight_hh @ h)"\n',
    ),
    "no-bias": _synthetic(
        "no_bias", '["h"]', _W_IH + _W_HH, 'h = "tanh(weight_ih @ x + weight_hh @ h)"\n'
    ),
    "signs-and-division": _synthetic(
        "signs",
        '["h"]',
        _W_IH + _W_HH + _B_IH,
        'h = "hard_sigmoid(weight_ih @ x - (bias_ih - weight_hh @ h / 2) + weight_hh @ (-h))"\n',
    ),
    "recurrent-terms-first": _synthetic(
        "hh_first",
        '["h"]',
        _W_IH + _W_HH + _B_HH,
        'h = "tanh(bias_hh + weight_hh @ h + weight_ih @ x)"\n',
    ),
    "gates-out-of-order": _synthetic(
        "unordered",
        '["r", "z", "n"]',
        _W_IH + _W_HH + _B_IH + _B_HH,
        'z = "sigmoid(weight_ih[z] @ x + bias_ih[z] + weight_hh[z] @ h + bias_hh[z])"\n'
        'r = "sigmoid(weight_ih[r] @ x + bias_ih[r] + weight_hh[r] @ h + bias_hh[r])"\n'
        'n = "tanh(weight_ih[n] @ x + bias_ih[n] + r * (weight_hh[n] @ h + bias_hh[n]))"\n'
        'h = "(1 - z) * n + z * h"\n',
    ),
    "intermediate": _synthetic(
        "intermediate",
        '["h"]',
        _W_IH + _W_HH,
        'pre = "weight_hh @ h"\nh = "tanh(weight_ih @ x + pre)"\n',
    ),
    "gate-without-input": _synthetic(
        "no_input_gate",
        '["z", "n"]',
        _param("weight_ih", '["hidden", "input"]', blocks='["n"]') + _W_HH,
        'z = "sigmoid(weight_hh[z] @ h)"\nn = "tanh(weight_ih[n] @ x + weight_hh[n] @ h)"\n'
        'h = "(1 - z) * n + z * h"\n',
    ),
    "identity-gate": _synthetic(
        "identity_gate",
        '["a", "h"]',
        _W_IH + _W_HH + _B_IH,
        'a = "identity(weight_ih[a] @ x + bias_ih[a] + weight_hh[a] @ h)"\n'
        'h = "tanh(weight_ih[h] @ x + bias_ih[h] + weight_hh[h] @ h) * sigmoid(a)"\n',
    ),
    "two-states": _synthetic(
        "two_states",
        '["i", "g"]',
        '[state.c]\nsize = "hidden"\n\n' + _W_IH + _W_HH,
        'i = "sigmoid(weight_ih[i] @ x + weight_hh[i] @ h)"\n'
        'g = "tanh(weight_ih[g] @ x + weight_hh[g] @ c)"\n'
        'c = "c * i + g"\nh = "tanh(c) + h / 2"\n',
    ),
}
_B = _W_IH + _W_HH + _B_IH + _B_HH


def _gate(gate: str, function: str) -> str:
    return (
        f'{gate} = "{function}(weight_ih[{gate}] @ x + bias_ih[{gate}] + weight_hh[{gate}] @ h'
        f' + bias_hh[{gate}])"\n'
    )


# The torch backend computes tanh gates through one sigmoid and folds them into their uses.
_W_O = _param("weight_o", '["hidden", "hidden"]', blocks='["n"]')
SYNTHETIC |= {
    "lone-tanh-gate": _synthetic("lone", '["g"]', _B, _gate("g", "tanh") + 'h = "h + h * g"\n'),
    "lone-tanh-gate-scaled": _synthetic(
        "lone_scaled", '["g"]', _B, _gate("g", "tanh") + 'h = "0.5 * h + g"\n'
    ),
    "tanh-gate-in-an-operand": _synthetic(
        "gate_operand",
        '["z", "n"]',
        _B + _W_O,
        _gate("z", "sigmoid") + _gate("n", "tanh") + 'h = "tanh(weight_o[n] @ (h + z * n))"\n',
    ),
    "constant-factor": _synthetic(
        "constant",
        '["z", "n"]',
        _B,
        _gate("z", "sigmoid") + _gate("n", "tanh") + 'h = "h + 1 / 2 * n + 2 * 0.5 * z"\n',
    ),
}
# Generator bugs, reported; each entry is a spec the generated code gets wrong.
SYNTHETIC["input-inside-an-operand"] = _synthetic(
    "scaled",
    '["h"]',
    _W_IH + _W_HH + _param("scale", '["input"]', blocks="[]"),
    'h = "tanh(weight_ih @ (scale * x) + weight_hh @ h)"\n',
)
COLLISION = _synthetic(
    "collision",
    '["r", "h"]',
    _W_IH + _W_HH,
    'r = "sigmoid(weight_ih[r] @ x + weight_hh[r] @ h)"\nhidden = "r * h"\n'
    'h = "tanh(weight_ih[h] @ x + weight_hh[h] @ hidden)"\n',
)


def _interpreted() -> list[Any]:
    """(spec, variant) for every shipped and user cell and the synthetic specs."""
    found = [
        pytest.param(loaded, variant, id=cell.name)
        for loaded in [
            *spec.shipped_specs().values(),
            *map(spec.load, sorted(USER_SPECS.glob("*.toml"))),
        ]
        for variant, cell in loaded.cells.items()
    ]
    found += [
        pytest.param(spec.loads(text, f"{name}.toml"), None, id=name)
        for name, text in SYNTHETIC.items()
    ]
    return found


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("loaded", "variant"), _interpreted())
def test_generated_layer_computes_the_equations(
    loaded: spec.Spec, variant: str | None, backend: str
) -> None:
    """Both backends equal the interpreter, with a mask that ends one sequence after step 2."""
    cell = loaded.cell(variant)
    rng = np.random.default_rng(11)
    steps, batch, sizes = 5, 2, {"input": 3, "hidden": 4, "proj": 2}
    active = cell.active_parameters(bias=True, proj=cell.supports_proj)
    weights = {param.name: rng.uniform(-1, 1, param.shape(sizes)) for param in active}
    x = rng.standard_normal((steps, batch, sizes["input"]))
    state = tuple(rng.uniform(-1, 1, (batch, sizes[s.stored_size])) for s in cell.states)
    masks = (np.arange(steps)[:, None] < np.array([steps, 2])[None, :])[..., None]
    expected_output, expected_state = interpret(cell, x, state, weights, masks)
    function = getattr(codegen.load_module(loaded, backend), cell.function_name)
    if backend == "torch":
        tensors = {name: torch.from_numpy(value) for name, value in weights.items()}
        state_tensors = tuple(map(torch.from_numpy, state))
        output, final = function(
            torch.from_numpy(x), state_tensors, **tensors, masks=torch.from_numpy(masks)
        )
    else:
        output, final = function(x, state, **weights, masks=masks)
    label = f"{cell.name} {backend} T={steps} B={batch}"
    compare(output, expected_output, "output", EXACT, label)
    for state_spec, got, want in zip(cell.states, final, expected_state, strict=True):
        compare(got, want, f"{state_spec.name}_n", EXACT, label)
