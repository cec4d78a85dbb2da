"""One trial: a candidate run on one case, judged against the gold of its cell (or of
another cell with the same parameters), and diagnosed when it fails."""

from __future__ import annotations

from dataclasses import dataclass

from rnnspec.cases import Case
from rnnspec.compare import CheckFailure, compare
from rnnspec.config import RNNConfig
from rnnspec.diagnosis.failures import in_eval_mode, rerun
from rnnspec.diagnosis.verdict import Verdict, diagnose
from rnnspec.errors import ConfigError
from rnnspec.harness import Candidate, Unsupported, forward, gold, make_inputs, quiet, require
from rnnspec.protocol import Implementation
from rnnspec.tolerance import for_case


@dataclass(frozen=True)
class Trial:
    """One case run by :func:`try_case`: its outcome, the failure message and the verdict."""

    case: Case
    outcome: str  # passed | failed | raised | skipped
    message: str = ""
    verdict: Verdict | None = None

    def __str__(self) -> str:
        text = f"{self.case.label()}: {self.outcome}"
        if self.message:
            text += f"\n  {self.message.splitlines()[0]}"
        if self.verdict is not None:
            text += f"\n  diagnosis: {self.verdict}"
        return text


def diagnostic_cases(cell: str) -> list[Case]:
    """Small cases that show each hypothesis of the library: plain, packed, stacked, proj."""
    base = RNNConfig(cell=cell, input_size=5, hidden_size=7)
    found = [
        Case(base, steps=6, batch=3),
        Case(base.replace(bidirectional=True), steps=6, batch=3, lengths=(6, 2, 4)),
        Case(base.replace(num_layers=2, bidirectional=True, batch_first=True), steps=6, batch=3),
    ]
    if base.resolve().supports_proj:
        found.append(Case(base.replace(proj_size=3), steps=6, batch=3, given_state=False))
    return found


def judged_as(case: Case, cell: str | None) -> Case:
    """``case`` with the gold's cell ``cell`` (the candidate is still built for its own)."""
    if cell is None or cell == case.config.cell:
        return case
    other = case.config.replace(cell=cell)
    if other.parameter_shapes() != case.config.parameter_shapes():
        raise ConfigError(
            f"--as-cell {cell}: its parameters differ from {case.config.cell}'s, so the same "
            "weights cannot run both"
        )
    return case.replace(config=other)


def try_case(impl: Implementation, case: Case, as_cell: str | None = None) -> Trial:
    """Run ``impl`` on ``case``; judge it against the gold of ``as_cell`` (default: the
    case's cell) and, when it fails, diagnose it."""
    try:
        require(impl, case)
    except Unsupported as reason:
        return Trial(case, "skipped", str(reason))
    judged = judged_as(case, as_cell)
    inputs = make_inputs(case, impl)
    try:
        with quiet():
            got = forward(in_eval_mode(Candidate(impl, case, inputs)))
    except CheckFailure as failure:
        return Trial(judged, "raised", str(failure), rerun(impl, case, failure.kind))
    expected = gold(judged, inputs)
    tol = for_case(case)
    try:
        for name, value, wanted in zip(
            judged.result_names(),
            (got.output, *got.states),
            (expected.output, *expected.states),
            strict=True,
        ):
            compare(value, wanted, name, tol, judged.label())
    except CheckFailure as failure:
        return Trial(judged, "failed", str(failure), diagnose(judged, inputs, got))
    return Trial(judged, "passed")
