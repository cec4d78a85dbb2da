"""Gradients: input, initial states and every weight against the float64 PyTorch reference.

Both networks get the same weights, inputs and seeded random upstream gradients for
output, h_n and c_n; one backward pass of ``<g_out, output> + <g_h, h_n> + <g_c, c_n>``
each. The expected gradients come from ``reference.nn.RNN`` in float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from rnnspec.cases import Case, layout_case, needs
from rnnspec.checks import Record
from rnnspec.checks.shapes import check_shape, expected_shapes
from rnnspec.compare import CheckFailure, compare, to_numpy
from rnnspec.diagnosis import attach, diagnosed, explain_gradients
from rnnspec.harness import Candidate, build, guard, make_inputs, quiet, require
from rnnspec.implementations import reference
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj
from rnnspec.tolerance import for_case

SIZES: dict[str, Any] = dict(steps=5, batch=3, lengths=(3, 5, 1), input_size=5, hidden_size=7)
PROJ = 3
UPSTREAM_SEED = 3_000_017


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


def backward(
    candidate: Candidate, upstream: Mapping[str, np.ndarray]
) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """One backward pass with ``upstream`` gradients through the candidate's framework:
    (input and state grads, weight grads)."""
    __tracebackhide__ = True
    case, label = candidate.case, candidate.case.label()
    got, pullback = candidate.framework.vjp(candidate)
    values = (got.output, *got.states)
    for (what, gradient), value in zip(upstream.items(), values, strict=True):
        check_shape(value, gradient.shape, what, label)
    cotangents = tuple(candidate.tensor(gradient) for gradient in upstream.values())
    return guard(f"{candidate.impl.name}: backward", case, lambda: pullback(cotangents))


def _present(grads: Mapping[str, Any], name: str, expected: np.ndarray, case: Case) -> Any:
    __tracebackhide__ = True
    if grads.get(name) is None:
        state = "missing from gradients()" if name not in grads else "None"
        raise CheckFailure(
            f"grad {name} is {state}, but should be a gradient of shape {expected.shape} "
            f"(max |grad| {np.abs(expected).max():.3g}) [{case.label()}]",
            category="missing-gradient",
        )
    return grads[name]


@diagnosed
def check_gradients(impl: Implementation, case: Case, record: Record) -> None:
    """Input, h0 (c0) and weight gradients equal the float64 reference's."""
    __tracebackhide__ = True
    require(impl, case, gradients=True)
    inputs = make_inputs(case, impl)
    rng = np.random.default_rng(case.seed + UPSTREAM_SEED)
    upstream = {what: rng.standard_normal(shape) for what, shape in expected_shapes(case).items()}
    gold_case = case.replace(dtype="float64", device="cpu", precision=None)
    with quiet():
        gold_leaves, gold_weights = backward(build(reference(), gold_case, inputs), upstream)
        leaves, weights = backward(build(impl, case, inputs), upstream)
    tol = for_case(case, gradient=True)
    label = case.label()
    try:
        for got, expected in ((leaves, gold_leaves), (weights, gold_weights)):
            for name, value in expected.items():
                if value is None:
                    continue
                wanted = to_numpy(value)
                got_value = _present(got, name, wanted, case)
                record(compare(got_value, wanted, f"grad {name}", tol, label))
    except CheckFailure as failure:
        every, gold_every = {**leaves, **weights}, {**gold_leaves, **gold_weights}
        attach(failure, lambda: explain_gradients(impl, case, every, gold_every, tol))
        raise
