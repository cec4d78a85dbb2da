"""The transforms, forward-mode and second-order checks' own footing: their golds against
finite differences, the torch 2.13 findings the built-ins declare, the declaration's skip,
and the plugin leaving slow checks out of a run without -m."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rnnspec.cases import make_case
from rnnspec.checks import autodiff, gradients, ignore, transforms
from rnnspec.compare import CheckFailure, to_numpy
from rnnspec.harness import Candidate, Unsupported, gold, make_inputs
from rnnspec.implementations import reference, torch_nn
from rnnspec.protocol import ALL_TRANSFORMS, Capabilities
from rnnspec.results import category_of

ROOT = Path(__file__).resolve().parents[1]
STEP = 1e-6  # central differences in float64: error ~ STEP**2, rounding ~ eps / STEP


def torch_declaring_everything():
    """torch.nn claiming every transform, to see what torch 2.13 does with the undeclared."""
    builtin = torch_nn()
    return replace(builtin, capabilities=replace(builtin.capabilities, transforms=ALL_TRANSFORMS))


@pytest.mark.parametrize("cell", ["lstm", "gru:reset_before"])
def test_jvp_gold_is_the_finite_difference_of_the_gold(cell: str) -> None:
    """The reference's output tangents (the jvp check's gold) are the central difference of
    the NumPy gold along the same input and h0 directions."""
    case = make_case(cell, 2, True, steps=4, batch=2, input_size=3, hidden_size=4)
    inputs = make_inputs(case)
    directions = gradients.random_like([inputs.x.shape, *(state.shape for state in inputs.hx)], 1)
    tangents = gradients.forward_mode(Candidate(reference(), case, inputs), directions)

    def moved(sign: float):
        x = inputs.x + sign * STEP * directions[0]
        hx = tuple(s + sign * STEP * d for s, d in zip(inputs.hx, directions[1:], strict=True))
        result = gold(case, replace(inputs, x=x, hx=hx))
        return (result.output, *result.states)

    for tangent, up, down in zip(tangents, moved(1.0), moved(-1.0), strict=True):
        np.testing.assert_allclose(to_numpy(tangent), (up - down) / (2 * STEP), atol=1e-8)


def test_double_backward_gold_is_the_finite_difference_of_the_gradients() -> None:
    """The reference's second-order input and h0 grads are the central difference of its
    first-order grads along the directions (a Hessian-vector product)."""
    case = make_case("lstm", steps=4, batch=2, input_size=3, hidden_size=4)
    inputs = make_inputs(case)
    upstream = autodiff.upstream_gradients(case)
    directions = gradients.random_like([inputs.x.shape, *(state.shape for state in inputs.hx)], 2)
    leaves, _ = gradients.second_order(Candidate(reference(), case, inputs), upstream, directions)

    def first_order(sign: float) -> dict:
        x = inputs.x + sign * STEP * directions[0]
        hx = tuple(s + sign * STEP * d for s, d in zip(inputs.hx, directions[1:], strict=True))
        moved = replace(inputs, x=x, hx=hx)
        return autodiff.backward(Candidate(reference(), case, moved), upstream)[0]

    up, down = first_order(1.0), first_order(-1.0)
    for name, value in leaves.items():
        difference = (to_numpy(up[name]) - to_numpy(down[name])) / (2 * STEP)
        np.testing.assert_allclose(to_numpy(value), difference, atol=1e-7, err_msg=name)


def test_torch_nn_has_no_vmap_batching_rule() -> None:
    """Finding behind the torch built-in's declaration: vmap over torch.nn raises."""
    case = transforms.vmap_cases(["gru"])[0]
    with pytest.raises(CheckFailure, match="Batching rule not implemented") as caught:
        transforms.check_vmap(torch_declaring_everything(), case, ignore)
    assert caught.value.kind == "unsupported-transform"


def test_torch_nn_float32_lstm_has_no_forward_mode_ad() -> None:
    """Finding behind the torch built-in's declaration: jvp through the float32 CPU LSTM
    (oneDNN's mkldnn_rnn_layer) raises; in float64 it is right."""
    cases = gradients.higher_order_cases(["lstm"])
    float32 = next(case for case in cases if case.dtype == "float32")
    with pytest.raises(CheckFailure, match="mkldnn_rnn_layer") as caught:
        gradients.check_jvp(torch_declaring_everything(), float32, ignore)
    assert caught.value.kind == "unsupported-transform"
    gradients.check_jvp(torch_declaring_everything(), cases[0], ignore)


def test_an_undeclared_transform_is_skipped_with_the_reason() -> None:
    builtin = torch_nn()
    case = transforms.vmap_cases(["lstm"])[0]
    with pytest.raises(Unsupported, match="transform vmap not supported"):
        transforms.check_vmap(builtin, case, ignore)
    assert "vmap" not in builtin.capabilities.as_dict()["transforms"]
    assert Capabilities().transforms == ALL_TRANSFORMS
    with pytest.raises(ValueError, match="transforms must be a subset"):
        Capabilities(transforms={"jit"})


def test_slow_checks_run_only_when_m_selects_them() -> None:
    """Without -m, or with one that does not name slow, compile and the large sizes are
    deselected; -m naming slow selects them."""

    def collected(*options: str) -> str:
        command = [sys.executable, "-m", "pytest", "conformance", "--impl", "torch"]
        command += ["--collect-only", "-q", "-p", "no:cacheprovider", *options]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True).stdout

    default = collected()
    assert "test_functional_call[" in default
    assert "test_compile[" not in default and "test_forward_large[" not in default
    category = collected("-m", "transforms")
    assert "test_vmap[" in category and "test_compile[" not in category
    selected = collected("-m", "transforms and (slow or not slow)")
    assert "test_compile[" in selected and "test_onnx[" in selected and "test_vmap[" in selected
    assert "test_forward_large[" not in collected("-m", "parity")
    assert "test_compile[" in collected("-m", "slow")


def test_a_checks_module_names_its_category_before_the_directories_above_it() -> None:
    """pytest's keywords hold the checkout's directory name: one named like a category
    (a worktree "shapes") must not take another category's checks."""
    keywords = {"shapes": 1, "conformance": 1, "transforms": 1, "test_compile": 1}
    assert category_of("conformance/test_transforms.py::test_compile[x]", keywords) == "transforms"
    assert category_of("tests/test_user.py::test_x", {"gradients": 1}) == "gradients"
