"""Verdicts attached to check failures, as data: ``failure.details["diagnosis"]``.

The checks call this at their failure points: parity with the run it judged
(:func:`annotate`), every other check through :func:`diagnosed`, which re-runs the
candidate's forward pass on the failing case (its inputs come from the case's seed) and
diagnoses that, or, when the run raises without h0, probes it with explicit zero states.
Attaching never raises: the diagnosis must not hide the failure it explains.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.compare import CheckFailure, within
from rnnspec.diagnosis.gradients import GradientVerdict, localise_gradients
from rnnspec.diagnosis.library import describe, probes
from rnnspec.diagnosis.predict import Model, canonical_inputs, distance, observed, predict
from rnnspec.diagnosis.verdict import Verdict, diagnose
from rnnspec.harness import (
    Candidate,
    Inputs,
    Outputs,
    as_hx,
    build,
    forward,
    gold,
    make_inputs,
    quiet,
)
from rnnspec.protocol import Implementation
from rnnspec.tolerance import Tolerance, for_case

VALUES = frozenset({"mismatch", "non-finite", "shape", "dtype"})  # a forward run explains these
STATE = frozenset({"raised", "device", "dtype"})  # a zero state made wrong may explain these
MATCHES_GOLD = (
    "its forward run on this case, re-run alone, matches the gold: the failure is "
    "particular to what this check does"
)
Check = Callable[[Implementation, Case, Any], None]


def attach(failure: CheckFailure, explain: Callable[[], Any]) -> None:
    """``explain()``'s verdict as ``failure.details["diagnosis"]`` (nothing when it has none)."""
    try:
        verdict = explain()
    except Exception as error:  # a broken candidate may break its re-run too
        verdict = Verdict(
            "", "", None, None, note=f"diagnosis failed: {type(error).__name__}: {error}"
        )
    if verdict is not None:
        failure.details["diagnosis"] = verdict


def annotate(failure: CheckFailure, case: Case, inputs: Inputs, got: Outputs) -> None:
    """Attach the diagnosis of the run ``got`` on ``case`` to its failure."""
    attach(failure, lambda: diagnose(case, inputs, got))


def diagnosed(check: Check) -> Check:
    """A check whose failures carry a diagnosis of the candidate's forward run on the case."""

    @functools.wraps(check)
    def check_then_diagnose(impl: Implementation, case: Case, record: Any) -> None:
        __tracebackhide__ = True
        try:
            check(impl, case, record)
        except CheckFailure as failure:
            if "diagnosis" not in failure.details:
                attach(failure, functools.partial(rerun, impl, case, failure.kind))
            raise

    return check_then_diagnose


def in_eval_mode(candidate: Candidate) -> Candidate:
    """``candidate`` with dropout off (its ``eval()``, where it has one): a diagnosis judges
    the forward pass, which the gold computes without dropout."""
    evaluate = getattr(candidate.instance, "eval", None)
    if callable(evaluate):
        evaluate()
    return candidate


def rerun(impl: Implementation, case: Case, kind: str) -> Verdict | None:
    """Diagnose the candidate's forward run on ``case`` after a failure of ``kind``, or
    probe why it fails to run."""
    if kind not in VALUES | STATE:
        return None
    inputs = make_inputs(case, impl)
    try:
        candidate = in_eval_mode(build(impl, case, inputs))
        with quiet():
            got = forward(candidate)
    except CheckFailure:
        if case.given_state:
            return without_state(impl, case)
        return zero_state_probe(impl, case, inputs)
    if case.device == "meta":  # no values to read: only a zero state made elsewhere shows
        return None
    if kind not in VALUES:
        return zero_state_probe(impl, case, inputs)
    verdict = diagnose(case, inputs, got)
    if verdict.cause is None and verdict.divergence is None and not verdict.note:
        carried = second_call_probe(candidate, inputs, got)
        return carried or Verdict(case.label(), case.config.cell, None, None, note=MATCHES_GOLD)
    return verdict


def _runs_without_state_in_another_dtype(impl: Implementation, case: Case) -> bool:
    """Whether hx=None runs on the case's device in float32 or float64 where the case's own
    dtype fails: then the zero state has a hard-coded dtype, else it is on the wrong device."""
    for dtype in ("float32", "float64"):
        other = case.replace(dtype=dtype)
        if dtype == case.dtype or impl.capabilities.unsupported(
            other.config, dtype=dtype, device=case.device, unbatched=case.unbatched
        ):
            continue
        try:
            with quiet():
                forward(build(impl, other))
        except CheckFailure:
            continue
        return True
    return False


def second_call_probe(candidate: Candidate, inputs: Inputs, first: Outputs) -> Verdict | None:
    """Without h0, a second identical call starts from the first call's final states: the
    network keeps its state between calls."""
    case = candidate.case
    found = [h for h in probes(case) if h.options["probe"] == "second_call"]
    first_seen = observed(case, first)
    if not found or isinstance(first_seen, str):
        return None
    with quiet():
        second = observed(case, forward(candidate))
    x, _, weights, lengths = canonical_inputs(case, inputs)
    cell = case.config.resolve()
    predicted = predict(Model(cell), case.config, x, list(first_seen.states), weights, lengths)
    tol = for_case(case)
    if isinstance(second, str) or distance(predicted, second, tol)[0] > 1:
        return None
    description, fix = describe(found[0], cell)
    note = "a second identical call without h0 starts from the first call's final states"
    return Verdict(
        case.label(),
        case.config.cell,
        None,
        found[0].name,
        description,
        fix,
        tried=1,
        note=note,
    )


def without_state(impl: Implementation, case: Case) -> Verdict | None:
    """Given h0 the run raises: diagnose a run without h0, when that names a cause."""
    case = case.replace(given_state=False)
    inputs = make_inputs(case, impl)
    try:
        with quiet():
            got = forward(build(impl, case, inputs))
    except CheckFailure:
        return None
    verdict = diagnose(case, inputs, got)
    if verdict.cause is None:
        return None
    return replace(verdict, note=f"with h0 given it raises; without h0: {verdict.where}")


def zero_state_probe(impl: Implementation, case: Case, inputs: Inputs) -> Verdict | None:
    """Without h0 the run fails; with explicit zeros in the input's dtype and device it is
    right: the network makes its own zero state in another dtype (when hx=None runs in
    another dtype) or on another device."""
    found = [h for h in probes(case) if h.options["probe"] == "explicit_zero_state"]
    if not found:
        return None
    try:
        candidate = build(impl, case, inputs)
        zeros = tuple(
            candidate.tensor(np.zeros(shape))
            for shape in case.config.state_shapes(case.config.resolve(), case.batch)
        )
        with quiet():
            x, _ = candidate.prepare()
            got = candidate.run(x, as_hx(zeros))
    except CheckFailure:
        return None
    if case.device != "meta":
        expected = gold(case, inputs)
        tol = for_case(case)
        pairs = zip((got.output, *got.states), (expected.output, *expected.states), strict=True)
        if not all(within(g, e, tol) for g, e in pairs):
            return None
    what = "dtype" if _runs_without_state_in_another_dtype(impl, case) else "device"
    hypothesis = next((h for h in found if h.options.get("when") == what), found[0])
    description, fix = describe(
        hypothesis, case.config.resolve(), dtype=case.dtype, device=case.device
    )
    return Verdict(
        case.label(),
        case.config.cell,
        None,
        hypothesis.name,
        description,
        fix,
        tried=1,
        note="with hx=None it fails; with explicit zero states it runs and matches the gold",
    )


def explain_gradients(
    impl: Implementation,
    case: Case,
    got: Mapping[str, Any],
    expected: Mapping[str, Any],
    tol: Tolerance,
) -> GradientVerdict:
    """Every wrong gradient, and the diagnosis of the forward run when that is wrong too
    (then the gradients follow from it)."""
    forward_verdict = rerun(impl, case, "mismatch")
    wrong_forward = forward_verdict is not None and forward_verdict.note != MATCHES_GOLD
    return localise_gradients(case, got, expected, tol, forward_verdict if wrong_forward else None)
