"""Gradients: input, initial states and every weight against the float64 PyTorch reference.

Both networks get the same weights, inputs and seeded random upstream gradients for
output, h_n and c_n; one backward pass of ``<g_out, output> + <g_h, h_n> + <g_c, c_n>``
each. The expected gradients come from ``reference.nn.RNN`` in float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from rnnspec.cases import Case, layout_case, make_case, needs
from rnnspec.checks import Record
from rnnspec.checks.assertions import check_shape, compare_gradients
from rnnspec.checks.autodiff import backward, collect, upstream_gradients
from rnnspec.compare import CheckFailure, compare
from rnnspec.diagnosis import attach, diagnosed, explain_gradients
from rnnspec.harness import (
    Candidate,
    as_hx,
    as_states,
    build,
    guard,
    make_inputs,
    quiet,
    require,
)
from rnnspec.implementations import reference
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj
from rnnspec.tolerance import for_case

SIZES: dict[str, Any] = dict(steps=5, batch=3, lengths=(3, 5, 1), input_size=5, hidden_size=7)
PROJ = 3


def _case(
    cell: str,
    layers: int,
    bidirectional: bool,
    layout: str = "time-major",
    bias: bool = True,
    proj: int = 0,
) -> Case:
    return layout_case(cell, layers, bidirectional, layout, bias=bias, proj_size=proj, **SIZES)


@needs("gradients")
def cases(cells: Iterable[str]) -> list[Case]:
    """Layers x directions x bias (and projections) in float64; then packed, batch_first,
    unbatched, no h0 and float32 on two bidirectional layers."""
    found: list[Case] = []
    for cell in cells:
        for layers in (1, 2):
            for bidirectional in (False, True):
                found.extend(
                    _case(cell, layers, bidirectional, bias=bias) for bias in (True, False)
                )
                if supports_proj(cell):
                    found.append(_case(cell, layers, bidirectional, proj=PROJ))
        stacked = _case(cell, 2, True)
        found += [
            _case(cell, 2, True, "packed"),
            _case(cell, 2, True, "packed batch_first"),
            _case(cell, 2, True, "batch_first"),
            _case(cell, 1, True, "unbatched"),
            stacked.replace(given_state=False),
            stacked.replace(dtype="float32"),
        ]
    return found


@diagnosed
def check_gradients(impl: Implementation, case: Case, record: Record) -> None:
    """Input, h0 (c0) and weight gradients equal the float64 reference's."""
    __tracebackhide__ = True
    require(impl, case, gradients=True)
    inputs = make_inputs(case, impl)
    upstream = upstream_gradients(case)
    gold_case = case.replace(dtype="float64", device="cpu", precision=None)
    with quiet():
        gold_leaves, gold_weights = backward(build(reference(), gold_case, inputs), upstream)
        leaves, weights = backward(build(impl, case, inputs), upstream)
    try:
        compare_gradients((leaves, weights), (gold_leaves, gold_weights), case, record)
    except CheckFailure as failure:
        every, gold_every = {**leaves, **weights}, {**gold_leaves, **gold_weights}
        tol = for_case(case, gradient=True)
        attach(failure, lambda: explain_gradients(impl, case, every, gold_every, tol))
        raise


# --- forward-mode AD and second derivatives (pytorch#174355, #5261) -------------------------

TANGENT_SEED = 4_000_037


@needs("gradients")
def higher_order_cases(cells: Iterable[str]) -> list[Case]:
    """float64: one layer, two bidirectional batch_first layers, no h0, unbatched,
    projections; float32 on two bidirectional layers. Not packed: the input tangent would
    have to flow through pack_padded_sequence (double backward adds packed cases)."""
    found: list[Case] = []
    for cell in cells:
        stacked = _case(cell, 2, True, "batch_first")
        found += [
            _case(cell, 1, False),
            stacked,
            stacked.replace(given_state=False),
            _case(cell, 1, True, "unbatched"),
            stacked.replace(dtype="float32"),
        ]
        if supports_proj(cell):
            found.append(_case(cell, 1, False, proj=PROJ))
    return found


@needs("gradients")
def double_backward_cases(cells: Iterable[str]) -> list[Case]:
    """:func:`higher_order_cases` and packed unsorted lengths on two bidirectional layers."""
    packed = [_case(cell, 2, True, "packed") for cell in cells]
    return higher_order_cases(cells) + packed


def random_like(shapes: Iterable[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def _leaves(candidate: Candidate, requires_grad: bool = False) -> tuple[Any, Any, tuple]:
    """x, hx and the differentiable inputs (x and every h0) of the candidate's case."""
    x, hx = candidate.prepare(requires_grad)
    return x, hx, (x, *as_states(hx))


def forward_mode(candidate: Candidate, tangents: list[np.ndarray]) -> tuple[Any, ...]:
    """``torch.func.jvp`` of (output, h_n[, c_n]) at the case's input and h0, in the
    directions ``tangents`` (one per input and h0): the output tangents."""
    __tracebackhide__ = True
    import torch

    _, _, primals = _leaves(candidate)
    directions = tuple(candidate.tensor(tangent) for tangent in tangents)

    def outputs(x: Any, *states: Any) -> tuple[Any, ...]:
        raw = candidate.impl.call(candidate.instance, candidate.pack(x), as_hx(states))
        got = candidate.unpack(raw)
        return (got.output, *got.states)

    with quiet():  # torch.func warns that it scripts helpers, torch.jit.script being deprecated
        _, result = guard(
            f"{candidate.impl.name} under torch.func.jvp",
            candidate.case,
            lambda: torch.func.jvp(outputs, primals, directions),
            kind="unsupported-transform",
        )
    return tuple(result)


def check_jvp(impl: Implementation, case: Case, record: Record) -> None:
    """Forward-mode AD: the output tangents for random input and h0 tangents equal the
    float64 reference's."""
    __tracebackhide__ = True
    require(impl, case, gradients=True, transform="jvp")
    inputs = make_inputs(case, impl)
    shapes = [inputs.x.shape, *(state.shape for state in inputs.hx or ())]
    tangents = random_like(shapes, case.seed + TANGENT_SEED)
    gold_case = case.replace(dtype="float64", device="cpu", precision=None)
    expected = forward_mode(build(reference(), gold_case, inputs), tangents)
    got = forward_mode(build(impl, case, inputs), tangents)
    tol = for_case(case, gradient=True)
    for name, value, wanted in zip(case.result_names(), got, expected, strict=True):
        record(compare(value, wanted, f"tangent of {name}", tol, case.label()))


def second_order(
    candidate: Candidate, upstream: Mapping[str, np.ndarray], directions: list[np.ndarray]
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """Double backward: the first-order grads of input and h0 (with ``create_graph``)
    dotted with ``directions``, differentiated again into input, h0 and the weights."""
    __tracebackhide__ = True
    import torch

    case, name = candidate.case, candidate.impl.name
    x, hx, leaves = _leaves(candidate, requires_grad=True)
    got = candidate.run(x, hx)
    values = (got.output, *got.states)
    for (what, gradient), value in zip(upstream.items(), values, strict=True):
        check_shape(value, gradient.shape, what, case.label())
    total = sum(
        (value * candidate.tensor(gradient)).sum()
        for gradient, value in zip(upstream.values(), values, strict=True)
    )
    first = guard(
        f"{name}: backward with create_graph=True",
        case,
        lambda: torch.autograd.grad(total, leaves, create_graph=True),
        kind="unsupported-transform",
    )
    again = sum(
        (grad * candidate.tensor(direction)).sum()
        for grad, direction in zip(first, directions, strict=True)
    )
    guard(f"{name}: double backward", case, again.backward, kind="unsupported-transform")
    return collect(candidate, x, hx)


def check_double_backward(impl: Implementation, case: Case, record: Record) -> None:
    """Second derivatives (a Hessian-vector product through input, h0 and every weight)
    equal the float64 reference's."""
    __tracebackhide__ = True
    require(impl, case, gradients=True, transform="double_backward")
    inputs = make_inputs(case, impl)
    upstream = upstream_gradients(case)
    shapes = [inputs.x.shape, *(state.shape for state in inputs.hx or ())]
    directions = random_like(shapes, case.seed + TANGENT_SEED)
    gold_case = case.replace(dtype="float64", device="cpu", precision=None)
    with quiet():
        expected = second_order(build(reference(), gold_case, inputs), upstream, directions)
        got = second_order(build(impl, case, inputs), upstream, directions)
    compare_gradients(got, expected, case, record, "second-order grad")


# --- sizes real kernels switch on -------------------------------------------------------------


@needs("gradients", "dtype")
def large_cases(cells: Iterable[str]) -> list[Case]:
    """Hidden size 256 over T = 1000 in float64, input size H / 2, B = 2. Not float32: its
    weight gradients, sums over 1000 steps, err by ~3.5 eps of the largest gradient in
    torch.nn and in the reference alike, far outside the element-wise tolerance policy on
    the small entries (README, findings)."""
    return [make_case(cell, input_size=128, hidden_size=256, steps=1000, batch=2) for cell in cells]
