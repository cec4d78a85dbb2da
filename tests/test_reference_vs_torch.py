"""The generated references against torch.nn, and against each other, in float64.

The PyTorch reference (``reference.nn``) must reproduce ``torch.nn.RNN``/``GRU``/``LSTM``
forward and backward to float64 round-off over every flag combination and input mode;
the NumPy gold (``reference.gold``) must reproduce the PyTorch reference for every cell,
variants included. The variants without a torch.nn equivalent are also checked against
independent per-step formulas (ONNX's definitions).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from reference import gold, nn
from rnnspec import harness, torch_equivalents
from rnnspec.cases import Case
from rnnspec.compare import CheckFailure, compare
from rnnspec.config import RNNConfig
from rnnspec.harness import Inputs, make_inputs
from rnnspec.spec import supports_proj
from rnnspec.tolerance import FLOOR, Tolerance
from rnnspec.weights import random_input, random_state, random_weights

EXACT = Tolerance(atol=FLOOR, rtol=0.0)  # same math in float64: only round-off may differ
INPUT, HIDDEN, PROJ = 5, 4, 3
STEPS, BATCH = 6, 3
LENGTHS = (STEPS, 1, STEPS - 2)  # unsorted, with the edge lengths 1 and T
MODES: dict[str, dict[str, Any]] = {
    "padded": {"batch": BATCH},
    "packed": {"batch": BATCH, "lengths": LENGTHS},
    "unbatched": {"batch": None},
}
TORCH_CELLS = ("elman", "elman:relu", "gru", "lstm")
VARIANTS = ("gru:reset_before", "lstm:peephole", "lstm:coupled")


def cases(
    cells: tuple[str, ...],
    layers: tuple[int, ...] = (1, 2, 3),
    given_states: tuple[bool, ...] = (True, False),
) -> list[Case]:
    """Every flag combination of the cells, each run padded, packed and unbatched."""
    found = []
    flags = itertools.product(layers, (False, True), (True, False), (False, True))
    for seed, (cell, (num_layers, bidirectional, bias, batch_first)) in enumerate(
        itertools.product(cells, flags)
    ):
        for proj in (0, PROJ) if supports_proj(cell) else (0,):
            config = RNNConfig(
                cell=cell,
                input_size=INPUT,
                hidden_size=HIDDEN,
                num_layers=num_layers,
                bidirectional=bidirectional,
                bias=bias,
                batch_first=batch_first,
                proj_size=proj,
            )
            for given_state, mode in itertools.product(given_states, MODES.values()):
                found.append(Case(config, STEPS, given_state=given_state, seed=seed, **mode))
    return found


def params(found: list[Case]) -> list[Any]:
    return [pytest.param(case, id=case.id()) for case in found]


TORCH_CASES = cases(TORCH_CELLS)
VARIANT_CASES = cases(VARIANTS, layers=(1, 2))


def call(module: torch.nn.Module, case: Case, x: torch.Tensor, hx: Any) -> tuple[Any, ...]:
    """Run ``module``; return (output padded, *final states) as tensors."""
    batch_first = case.config.batch_first
    given = x
    if case.lengths is not None:
        given = pack_padded_sequence(
            x, list(case.lengths), batch_first=batch_first, enforce_sorted=False
        )
    output, state = module(given, None if hx is None else as_hx(hx))
    if case.lengths is not None:
        assert isinstance(output, PackedSequence), f"output is not packed [{case.label()}]"
        output = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)[0]
    return (output, *(state if isinstance(state, tuple) else (state,)))


def leaves(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    arrays = (inputs.x, *(inputs.hx or ()))
    return tuple(torch.tensor(array, requires_grad=True) for array in arrays)


def as_hx(states: tuple[Any, ...]) -> Any:
    """``hx`` as torch.nn takes it: one tensor, or a tuple (h0, c0)."""
    tensors = tuple(torch.as_tensor(state) for state in states)
    return tensors if len(tensors) > 1 else tensors[0]


def load(module: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Copy the canonical float64 weights into ``module``."""
    module.load_state_dict({name: torch.from_numpy(value) for name, value in weights.items()})


def reference_module(config: RNNConfig, weights: dict[str, np.ndarray]) -> nn.RNN:
    """The generated PyTorch reference in float64 with ``weights``."""
    module = nn.RNN(config, dtype=torch.float64)
    load(module, weights)
    return module


def check_against_torch(case: Case, tamper: Callable[[nn.RNN], None] | None = None) -> None:
    """Forward and every gradient, with random upstream gradients on each output."""
    __tracebackhide__ = True
    inputs = make_inputs(case)
    module = torch_equivalents.module(case.config, dtype=torch.float64)
    assert [name for name, _ in module.named_parameters()] == list(inputs.weights)
    load(module, inputs.weights)
    reference = nn.from_torch(module)
    if tamper is not None:
        tamper(reference)
    results = {}
    for name, network in (("torch", module), ("reference", reference)):
        tensors = leaves(inputs)
        outputs = call(network, case, tensors[0], tensors[1:] or None)
        upstream = np.random.default_rng(case.seed + 7)
        loss = sum(
            (out * torch.from_numpy(upstream.standard_normal(out.shape))).sum() for out in outputs
        )
        loss.backward()
        inputs_named = zip(("x", "h0", "c0"), tensors, strict=False)
        grads = {f"grad {what}": tensor.grad for what, tensor in inputs_named}
        grads |= {f"grad {p}": value.grad for p, value in network.named_parameters()}
        results[name] = {**dict(zip(case.result_names(), outputs, strict=True)), **grads}
    expected, got = results["torch"], results["reference"]
    assert got.keys() == expected.keys()
    for what, value in expected.items():
        compare(got[what], value, what, EXACT, case.label())


@pytest.mark.parametrize("case", params(TORCH_CASES))
def test_reference_equals_torch_nn(case: Case) -> None:
    check_against_torch(case)


def _swap_gates(reference: nn.RNN) -> None:
    with torch.no_grad():
        weight = reference.weight_ih_l0
        weight.copy_(torch.cat(weight.chunk(3 if weight.shape[0] == 3 * HIDDEN else 4)[::-1]))


def _skew_gradient(reference: nn.RNN) -> None:
    reference.weight_hh_l0.register_hook(lambda grad: grad * (1 + 1e-9))


def _skew_h0_gradient(reference: nn.RNN) -> None:
    original = reference._initial_states

    def skewed(*args: Any) -> list[torch.Tensor]:
        states = [state.view_as(state) for state in original(*args)]
        for state in states:
            state.register_hook(lambda grad: grad * (1 + 1e-9))
        return states

    reference._initial_states = skewed  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("tamper", "cell", "mode", "caught"),
    [
        (_swap_gates, "gru", "padded", "output"),
        (_swap_gates, "lstm", "packed", "output"),
        (_skew_gradient, "elman", "unbatched", "grad weight_hh_l0"),
        (_skew_h0_gradient, "lstm", "padded", "grad h0"),
    ],
)
def test_check_catches_a_broken_reference(tamper, cell: str, mode: str, caught: str) -> None:
    """The comparison above fails on a reference with a swapped gate or a skewed gradient."""
    config = RNNConfig(cell=cell, input_size=INPUT, hidden_size=HIDDEN)
    case = Case(config, STEPS, **MODES[mode])
    with pytest.raises(CheckFailure, match=rf"^{caught}\[") as info:
        check_against_torch(case, tamper)
    assert info.value.kind == "mismatch" and case.label() in str(info.value)


def check_gold_against_reference(case: Case) -> None:
    """NumPy gold (padded input plus lengths) against the PyTorch reference, forward."""
    __tracebackhide__ = True
    inputs = make_inputs(case)
    tensors = leaves(inputs)
    with torch.no_grad():
        expected = call(
            reference_module(case.config, inputs.weights), case, tensors[0], tensors[1:] or None
        )
    got = harness.gold(case, inputs)
    for what, got_value, expected_value in zip(
        case.result_names(), (got.output, *got.states), expected, strict=True
    ):
        assert isinstance(got_value, np.ndarray) and got_value.dtype == np.float64, what
        compare(got_value, expected_value, what, EXACT, case.label())


@pytest.mark.parametrize("case", params(TORCH_CASES + VARIANT_CASES))
def test_gold_equals_torch_reference(case: Case) -> None:
    check_gold_against_reference(case)


# Independent per-step formulas for the variants (ONNX's operator definitions).


def sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def gru_reset_before(x, h, w, r_w, wb, rb):
    """ONNX GRU, linear_before_reset=0: the reset gate scales h before the matmul."""
    (wr, wz, wn), (rr, rz, rn) = np.split(w, 3), np.split(r_w, 3)
    (bir, biz, bin_), (bhr, bhz, bhn) = np.split(wb, 3), np.split(rb, 3)
    r = sigmoid(wr @ x + bir + rr @ h + bhr)
    z = sigmoid(wz @ x + biz + rz @ h + bhz)
    n = np.tanh(wn @ x + bin_ + rn @ (r * h) + bhn)
    return ((1 - z) * n + z * h,)


def lstm_peephole(x, h, c, w, r_w, wb, rb, p):
    """ONNX LSTM with peepholes: i and f see c(t-1), o sees c(t)."""
    wi, wf, wg, wo = np.split(w @ x + wb + r_w @ h + rb, 4)
    p_i, p_f, p_o = np.split(p, 3)
    i = sigmoid(wi + p_i * c)
    f = sigmoid(wf + p_f * c)
    c_new = f * c + i * np.tanh(wg)
    o = sigmoid(wo + p_o * c_new)
    return o * np.tanh(c_new), c_new


def lstm_coupled(x, h, c, w, r_w, wb, rb):
    """ONNX LSTM with input_forget=1: f = 1 - i; weights hold blocks (i, g, o) only."""
    wi, wg, wo = np.split(w @ x + wb + r_w @ h + rb, 3)
    i = sigmoid(wi)
    c_new = (1 - i) * c + i * np.tanh(wg)
    return sigmoid(wo) * np.tanh(c_new), c_new


STEP_FUNCTIONS = {
    "gru:reset_before": gru_reset_before,
    "lstm:peephole": lstm_peephole,
    "lstm:coupled": lstm_coupled,
}


@pytest.mark.parametrize("cell", VARIANTS)
def test_variant_semantics(cell: str) -> None:
    """Gold and PyTorch reference equal a hand-written per-step loop (one layer, B=2)."""
    config = RNNConfig(cell=cell, input_size=INPUT, hidden_size=HIDDEN)
    weights = random_weights(config, seed=3)
    x = random_input(config, STEPS, 2, seed=3)
    hx = random_state(config, 2, seed=3)
    extra = [weights["weight_peephole_l0"]] if cell == "lstm:peephole" else []
    per_layer = [weights[f"{p}_l0"] for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    expected = np.zeros((STEPS, 2, HIDDEN))
    finals = []
    for b in range(2):
        state = tuple(s[0, b] for s in hx)
        for t in range(STEPS):
            state = STEP_FUNCTIONS[cell](x[t, b], *state, *per_layer, *extra)
            expected[t, b] = state[0]
        finals.append(state)
    expected_states = [np.stack([final[k] for final in finals])[None] for k in range(len(hx))]
    reference = reference_module(config, weights)
    with torch.no_grad():
        torch_output, torch_state = reference(torch.from_numpy(x), as_hx(hx))
    gold_output, gold_state = gold.forward(config, weights, x, hx)
    label = f"{config.describe()} T={STEPS} B=2"
    for source, output, state in (
        ("reference.nn", torch_output, torch_state),
        ("reference.gold", gold_output, gold_state),
    ):
        states = state if isinstance(state, tuple) else (state,)
        compare(output, expected, f"{source} output", EXACT, label)
        for name, got, want in zip(("h_n", "c_n"), states, expected_states, strict=False):
            compare(got, want, f"{source} {name}", EXACT, label)


@pytest.mark.parametrize("cell", VARIANTS)
def test_variant_gradcheck(cell: str) -> None:
    """Autograd through the PyTorch reference of each variant agrees with finite differences."""
    config = RNNConfig(cell=cell, input_size=3, hidden_size=2, bidirectional=True)
    reference = nn.RNN(config, dtype=torch.float64)
    x = torch.from_numpy(random_input(config, 3, 2, seed=5)).requires_grad_()
    hx = tuple(
        torch.from_numpy(state).requires_grad_() for state in random_state(config, 2, seed=5)
    )
    weights = tuple(reference.parameters())

    def run(x: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states, params = rest[: len(hx)], rest[len(hx) :]
        mapping = dict(zip(dict(reference.named_parameters()), params, strict=True))
        output, state = torch.func.functional_call(reference, mapping, (x, as_hx(states)))
        return (output, *(state if isinstance(state, tuple) else (state,)))

    assert torch.autograd.gradcheck(run, (x, *hx, *weights))


@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
def test_an_empty_batch_gives_empty_results_like_torch_nn(cell: str) -> None:
    config = RNNConfig(cell=cell, input_size=5, hidden_size=7, num_layers=2, bidirectional=True)
    expected = torch_equivalents.module(config)
    got = nn.from_torch(expected)
    x = torch.zeros(4, 0, 5)
    with torch.no_grad():
        (output, states), (torch_output, torch_states) = got(x), expected(x)
    assert output.shape == torch_output.shape
    for state, torch_state in zip(
        states if isinstance(states, tuple) else (states,),
        torch_states if isinstance(torch_states, tuple) else (torch_states,),
        strict=True,
    ):
        assert state.shape == torch_state.shape
