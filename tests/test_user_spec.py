"""A user adds a cell kind by writing a spec file, and nothing else.

tests/specs/indrnn.toml (IndRNN: a per-unit recurrent weight) and tests/specs/mgu.toml
(minimal gated unit) are registered like ``--spec FILE`` does; the generated PyTorch
reference, the NumPy gold and a hand-written loop must agree, autograd must be right,
and the conformance suite must run their cases.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from reference import gold
from rnnspec import spec
from rnnspec.cases import Case
from rnnspec.compare import compare
from rnnspec.config import RNNConfig
from rnnspec.weights import random_input, random_state, random_weights
from tests.test_reference_vs_torch import (
    EXACT,
    cases,
    check_gold_against_reference,
    params,
    reference_module,
)

SPECS = Path(__file__).parent / "specs"
REPO = Path(__file__).resolve().parent.parent
KINDS = ("indrnn", "mgu")
STEPS = 5


@contextmanager
def user_specs() -> Iterator[None]:
    """Register the user specs; afterwards the registry is as it was."""
    with spec.isolated_registry():
        for kind in KINDS:
            spec.register(spec.load(SPECS / f"{kind}.toml"))
        yield


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    with user_specs():
        yield


def test_registration_is_undone() -> None:
    assert set(KINDS) <= set(spec.all_specs())
    spec._registered.pop("indrnn")
    with user_specs():
        assert spec.resolve("indrnn").title == "IndRNN"
    assert "indrnn" not in spec.all_specs() and "mgu" in spec.all_specs()


def test_user_cells() -> None:
    indrnn, mgu = spec.resolve("indrnn"), spec.resolve("mgu")
    assert (indrnn.gates, mgu.gates) == (("h",), ("f", "n"))
    assert indrnn.parameter("weight_hh").block_shape == ("hidden",)
    shapes = RNNConfig(cell="indrnn", input_size=5, hidden_size=4).parameter_shapes()
    assert shapes == {
        "weight_ih_l0": (4, 5),
        "weight_hh_l0": (4,),
        "bias_ih_l0": (4,),
        "bias_hh_l0": (4,),
    }
    assert RNNConfig(cell="mgu", input_size=5, hidden_size=4).parameter_shapes()[
        "weight_hh_l0"
    ] == (8, 4)


with user_specs():  # the cells must resolve to build their cases
    CASES = cases(KINDS, layers=(1, 2), given_states=(True,))


@pytest.mark.parametrize("case", params(CASES))
def test_torch_reference_equals_gold(case: Case) -> None:
    check_gold_against_reference(case)


# Hand-written, independent of the specs: one step of each cell, and a network loop.


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def indrnn_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    return np.maximum(weight_ih @ x + bias_ih + weight_hh * h + bias_hh, 0.0)


def mgu_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    (w_f, w_n), (u_f, u_n) = np.split(weight_ih, 2), np.split(weight_hh, 2)
    (b_if, b_in), (b_hf, b_hn) = np.split(bias_ih, 2), np.split(bias_hh, 2)
    f = _sigmoid(w_f @ x + b_if + u_f @ h + b_hf)
    n = np.tanh(w_n @ x + b_in + u_n @ (f * h) + b_hn)
    return (1 - f) * h + f * n


STEPS_BY_KIND: dict[str, Callable[..., np.ndarray]] = {"indrnn": indrnn_step, "mgu": mgu_step}


def hand_written(kind, config, weights, x, h0):
    """Time-major x (T, B, I): layers in turn, the reverse direction over reversed time."""
    step, directions = STEPS_BY_KIND[kind], config.num_directions
    layer_input, finals = x, np.zeros_like(h0)
    for layer in range(config.num_layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            params = [weights[name + suffix] for name in names]
            output = np.zeros((x.shape[0], x.shape[1], config.hidden_size))
            for b in range(x.shape[1]):
                h = h0[layer * directions + direction, b]
                order = range(x.shape[0]) if direction == 0 else reversed(range(x.shape[0]))
                for t in order:
                    h = step(layer_input[t, b], h, *params)
                    output[t, b] = h
                finals[layer * directions + direction, b] = h
            outputs.append(output)
        layer_input = np.concatenate(outputs, axis=-1)
    return layer_input, finals


@pytest.mark.parametrize("kind", KINDS)
def test_equals_hand_written_loop(kind: str) -> None:
    config = RNNConfig(cell=kind, input_size=5, hidden_size=4, num_layers=2, bidirectional=True)
    weights = random_weights(config, seed=4)
    x = random_input(config, STEPS, 2, seed=4)
    (h0,) = random_state(config, 2, seed=4)
    expected_output, expected_h_n = hand_written(kind, config, weights, x, h0)
    with torch.no_grad():
        torch_output, torch_h_n = reference_module(config, weights)(
            torch.from_numpy(x), torch.from_numpy(h0)
        )
    gold_output, gold_h_n = gold.forward(config, weights, x, h0)
    label = f"{config.describe()} T={STEPS} B=2"
    for source, output, h_n in (
        ("reference.nn", torch_output, torch_h_n),
        ("reference.gold", gold_output, gold_h_n),
    ):
        compare(output, expected_output, f"{source} output", EXACT, label)
        compare(h_n, expected_h_n, f"{source} h_n", EXACT, label)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind: str) -> None:
    """Autograd through the generated reference agrees with finite differences."""
    config = RNNConfig(cell=kind, input_size=3, hidden_size=2, bidirectional=True)
    weights = random_weights(config, seed=6)
    reference = reference_module(config, weights)
    names = list(weights)
    x = torch.from_numpy(random_input(config, 3, 2, seed=6)).requires_grad_()
    h0 = torch.from_numpy(random_state(config, 2, seed=6)[0]).requires_grad_()
    params = tuple(torch.from_numpy(weights[name]).requires_grad_() for name in names)

    def run(x: torch.Tensor, h0: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mapping = dict(zip(names, params, strict=True))
        return torch.func.functional_call(reference, mapping, (x, h0))

    assert torch.autograd.gradcheck(run, (x, h0, *params))


def test_conformance_suite_runs_user_specs() -> None:
    """``pytest conformance --impl reference --spec FILE`` runs and passes the new cells."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "conformance"),
        "--impl",
        "reference",
        "--spec",
        "tests/specs/indrnn.toml",
        "--spec",
        "tests/specs/mgu.toml",
        "-m",
        "parity",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rA",
    ]
    single_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny tensors: 5x faster
    result = subprocess.run(
        command, cwd=REPO, env=single_thread, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for kind in KINDS:
        passed = re.findall(rf"^PASSED \S*\[{kind}-\S*\]$", result.stdout, re.MULTILINE)
        skipped = re.findall(rf"^SKIPPED .*{kind}", result.stdout, re.MULTILINE)
        assert len(passed) >= 16 and not skipped, (
            f"{kind}: {len(passed)} passed, {len(skipped)} skipped; expected >= 16 passed, none skipped"
        )
