"""What the checks assert, shared by every category: shapes, dtypes, outputs and gradients
against what they should be, and a call that must raise.

Each helper raises :class:`~rnnspec.compare.CheckFailure` in the one message shape (what,
got, expected, tolerance, config) or passes its comparisons to ``record``. The category
modules import these and never each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.checks import Record
from rnnspec.compare import CheckFailure, check_dtype, compare, to_numpy
from rnnspec.harness import Candidate, Outputs, no_grad, quiet
from rnnspec.tolerance import Tolerance, for_case


def check_shape(value: Any, expected: tuple[int, ...], what: str, label: str) -> None:
    """Fail with ``what has shape (...), but should have (...) [config]``."""
    __tracebackhide__ = True
    got = tuple(value.shape)
    if got != tuple(expected):
        raise CheckFailure(
            f"{what} has shape {got}, but should have {tuple(expected)} [{label}]",
            kind="shape",
        )


def assert_gold_shapes(got: Outputs, expected: Outputs, case: Case) -> None:
    """Output and every final state have the gold's shapes."""
    __tracebackhide__ = True
    label = case.label()
    for name, value, reference in zip(
        case.result_names(),
        (got.output, *got.states),
        (expected.output, *expected.states),
        strict=True,
    ):
        check_shape(value, np.shape(reference), name, label)


def check_dtypes(got: Outputs, case: Case) -> None:
    """Output and every final state have the case's (the input's) dtype."""
    __tracebackhide__ = True
    for name, value in zip(case.result_names(), (got.output, *got.states), strict=True):
        check_dtype(value, case.dtype, name, case.label())


def compare_outputs(
    got: Outputs,
    expected: Outputs,
    case: Case,
    record: Record,
    label: str | None = None,
    *,
    tol: Tolerance | None = None,
    suffix: str = "",
) -> None:
    """Compare output and every final state, in that order, under ``tol`` (the case's
    tolerance unless given); failures name ``output{suffix}`` (...) and ``label`` (the
    case's label unless given)."""
    __tracebackhide__ = True
    tol = for_case(case) if tol is None else tol
    label = case.label() if label is None else label
    for name, got_value, expected_value in zip(
        case.result_names(),
        (got.output, *got.states),
        (expected.output, *expected.states),
        strict=True,
    ):
        record(compare(got_value, expected_value, name + suffix, tol, label))


def _present(grads: Mapping[str, Any], name: str, expected: np.ndarray, case: Case) -> Any:
    __tracebackhide__ = True
    if grads.get(name) is None:
        state = "missing from gradients()" if name not in grads else "None"
        raise CheckFailure(
            f"grad {name} is {state}, but should be a gradient of shape {expected.shape} "
            f"(max |grad| {np.abs(expected).max():.3g}) [{case.label()}]",
            kind="missing-gradient",
        )
    return grads[name]


def compare_gradients(
    got: tuple[Mapping[str, Any], Mapping[str, Any]],
    expected: tuple[Mapping[str, Any], Mapping[str, Any]],
    case: Case,
    record: Record,
    what: str = "grad",
) -> None:
    """Every gradient the reference has (leaves, then weights), present and within the
    case's gradient tolerance."""
    __tracebackhide__ = True
    tol = for_case(case, gradient=True)
    label = case.label()
    for found, wanted_grads in zip(got, expected, strict=True):
        for name, value in wanted_grads.items():
            if value is None:
                continue
            wanted = to_numpy(value)
            record(
                compare(_present(found, name, wanted, case), wanted, f"{what} {name}", tol, label)
            )


def expect_raise(
    candidate: Candidate, x: Any, hx: Any, what: str, kind: str = "accepted-invalid"
) -> None:
    """Any exception from the candidate counts as a clean refusal; a silent success fails."""
    __tracebackhide__ = True
    try:
        with no_grad(candidate), quiet():
            candidate.impl.call(candidate.instance, x, hx)
    except Exception:
        return
    raise CheckFailure(
        f"forward accepted {what}, but should raise [{candidate.case.label()}]",
        kind=kind,
    )
