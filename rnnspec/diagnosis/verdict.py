"""The verdict: where a candidate diverges, what it most likely got wrong, and the fix.

Each explanation of the library predicts the outputs on the failing case's own inputs; the
one that matches the candidate within the tolerance policy is named. Matching starts at the
precision the candidate computes in (its declared precision, else the case's dtype); when
nothing matches there, it goes on at each lower precision (float32, float16, bfloat16): a
candidate whose outputs equal the gold at float32's tolerance computes in float32, and the
verdict says so instead of naming the nearest wrong hypothesis. When nothing matches at all,
the verdict says that instead of guessing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.diagnosis.library import explanations
from rnnspec.diagnosis.localise import DIRECTIONS, Divergence, localise
from rnnspec.diagnosis.predict import Model, canonical_inputs, distance, observed, predict
from rnnspec.harness import Inputs, Outputs
from rnnspec.tolerance import EPS, computes_in, for_case, tolerance

NO_MATCH = "no hypothesis in the library matches"
COMPUTES_IN = "computes_in_{precision}"
PRECISION_FIX = (
    "compute in the input's dtype ({dtype}), or declare that the implementation computes "
    "in {precision} so that it is judged at {precision}'s tolerance"
)


@dataclass(frozen=True)
class Verdict:
    """Where a candidate diverges and which hypothesis of the library explains it."""

    config: str
    cell: str
    divergence: Divergence | None
    hypothesis: str | None
    description: str = ""
    fix: str = ""
    error: float | None = None  # None for a probe: a re-run, not a prediction
    also: tuple[str, ...] = ()
    tried: int = 0
    closest: str | None = None
    closest_error: float | None = None
    precision: str | None = None  # a lower precision than the case's that the match needed
    note: str = ""  # why the outputs could not be localised (shapes, dimensions), or more

    @property
    def cause(self) -> str | None:
        """The likely cause in a few words, for summaries: a hypothesis or a precision."""
        if self.hypothesis is not None:
            return self.hypothesis
        return COMPUTES_IN.format(precision=self.precision) if self.precision else None

    @property
    def where(self) -> str:
        return self.note or (str(self.divergence) if self.divergence else "no divergence found")

    @property
    def what(self) -> str:
        if self.hypothesis is not None:
            matched = "" if self.error is None else f" to {self.error:.1g}"
            text = f"matches {self.hypothesis}{matched}: {self.description}"
            if self.precision:
                text += f" (matched at {self.precision}'s tolerance)"
            if self.also:
                text += f"; also consistent with {', '.join(self.also)}"
            return text + (f"; fix: {self.fix}" if self.fix else "")
        if self.precision is not None:
            return f"{self.description}; fix: {self.fix}"
        text = f"{NO_MATCH} ({self.tried} tried"
        if self.closest is not None and self.closest_error is not None:
            text += f"; closest {self.closest}, off by {self.closest_error:.2g}"
        return text + ")"

    def __str__(self) -> str:
        if self.divergence is None and self.note and self.cause is None and not self.tried:
            return self.note
        return f"{self.where}; {self.what}"

    def as_dict(self) -> dict[str, Any]:
        divergence = self.divergence
        return {
            "verdict": str(self),
            "cell": self.cell,
            "cause": self.cause,
            "fix": self.fix,
            "hypothesis": self.hypothesis,
            "description": self.description,
            "error": self.error,
            "also": list(self.also),
            "tried": self.tried,
            "closest": self.closest,
            "closest_error": self.closest_error,
            "precision": self.precision,
            "divergence": None
            if divergence is None
            else {
                "layer": divergence.layer,
                "direction": DIRECTIONS[divergence.direction],
                "state": divergence.state,
                "step": divergence.step,
                "seen_in": divergence.seen_in,
                "wrong_updates": None
                if divergence.wrong_updates is None
                else list(divergence.wrong_updates),
            },
            "note": self.note,
            "config": self.config,
        }


def lower_precisions(dtype: str) -> list[str]:
    """The dtypes less precise than ``dtype``, most precise first."""
    return sorted((d for d in EPS if EPS[d] > EPS[dtype]), key=EPS.__getitem__)


def diagnose(case: Case, inputs: Inputs, got: Outputs) -> Verdict:
    """Localise the candidate's divergence on ``case`` and name the matching hypothesis."""
    with np.errstate(all="ignore"):  # hypotheses and broken candidates may overflow
        return _diagnose(case, inputs, got)


def _diagnose(case: Case, inputs: Inputs, got: Outputs) -> Verdict:
    config, label = case.config, case.label()
    tol = for_case(case)
    canonical = canonical_inputs(case, inputs)
    gold = predict(Model(config.resolve()), config, *canonical)
    seen = observed(case, got)
    if isinstance(seen, str):
        return Verdict(label, config.cell, None, None, note=seen)
    shapes = zip(case.result_names(), gold.arrays(), seen.arrays(), strict=True)
    mismatched = [
        f"{n} has shape {g.shape}, expected {p.shape}" for n, p, g in shapes if p.shape != g.shape
    ]
    note = "; ".join(mismatched)
    divergence = None if mismatched else localise(case, seen, gold, canonical, tol)
    predictions = []
    for explanation in explanations(case):
        predicted = predict(explanation.model, config, *canonical)
        if distance(predicted, gold, tol)[0] > 1:  # else indistinguishable from the gold here
            predictions.append((explanation, predicted))
    closest = None
    base = Verdict(label, config.cell, divergence, None, tried=len(predictions), note=note)
    computed = computes_in(case)
    for precision in [computed, *lower_precisions(computed)]:
        lower = precision != computed
        tol = tolerance(precision, case.steps, config.num_layers)
        error = distance(gold, seen, tol)
        if error[0] <= 1:  # the gold matches: at the case's precision nothing is wrong
            if not lower:
                break
            return replace(
                base,
                description=f"equals the gold to {error[1]:.1g}, within {precision}'s "
                f"tolerance: your network computes in {precision}, not {case.dtype}",
                fix=PRECISION_FIX.format(dtype=case.dtype, precision=precision),
                error=error[1],
                precision=precision,
            )
        scored = sorted(
            ((*distance(predicted, seen, tol), e) for e, predicted in predictions),
            key=lambda item: item[0],
        )
        matching = [item for item in scored if item[0] <= 1]
        if matching:
            _, error_abs, best = matching[0]
            also = tuple(dict.fromkeys(e.name for _, _, e in matching[1:] if e.name != best.name))
            return replace(
                base,
                hypothesis=best.name,
                description=best.description,
                fix=best.fix,
                error=error_abs,
                also=also,
                precision=precision if lower else None,
            )
        if not lower:
            closest = next((item for item in scored if np.isfinite(item[1])), None)
    return replace(
        base,
        closest=closest[2].name if closest else None,
        closest_error=closest[1] if closest else None,
    )


def likely_causes(diagnoses: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per cell, the causes the diagnoses name, most frequent first, with their fix."""
    by_cell: dict[str, Counter[str]] = defaultdict(Counter)
    fixes: dict[str, str] = {}
    unexplained: Counter[str] = Counter()
    for diagnosis in diagnoses:
        cell, cause = diagnosis.get("cell") or "?", diagnosis.get("cause")
        if cause:
            by_cell[cell][cause] += 1
            fixes.setdefault(cause, diagnosis.get("fix") or "")
        else:
            unexplained[cell] += 1
    lines = []
    for cell in sorted(by_cell.keys() | unexplained.keys()):
        causes = [
            f"{cause} ({count}x){' - fix: ' + fixes[cause] if fixes[cause] else ''}"
            for cause, count in by_cell[cell].most_common()
        ]
        if unexplained[cell]:
            causes.append(f"{unexplained[cell]} failure(s) the library does not explain")
        lines.append(f"{cell}: " + "; ".join(causes))
    return lines
