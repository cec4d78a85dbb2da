"""A candidate run backward, shared by the checks that compare gradients: seeded upstream
gradients, one backward pass through the candidate's framework, the gradients collected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.checks.assertions import check_shape
from rnnspec.harness import Candidate, as_states, guard

UPSTREAM_SEED = 3_000_017


def upstream_gradients(case: Case) -> dict[str, np.ndarray]:
    """Seeded random gradients for output, h_n (and c_n), keyed by those names."""
    rng = np.random.default_rng(case.seed + UPSTREAM_SEED)
    return {what: rng.standard_normal(shape) for what, shape in case.result_shapes().items()}


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


def collect(candidate: Candidate, x: Any, hx: Any) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """After a torch backward pass: the grads of input and h0 (c0), and the weights' from
    ``gradients()``."""
    __tracebackhide__ = True
    leaves = {"input": x.grad}
    if hx is not None:
        names = candidate.case.state_names("0")
        leaves.update({name: state.grad for name, state in zip(names, as_states(hx), strict=True)})
    weights = guard(
        f"{candidate.impl.name}: gradients()",
        candidate.case,
        lambda: candidate.impl.gradients(candidate.instance),
    )
    return leaves, weights
