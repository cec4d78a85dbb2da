"""Diagnose a candidate that fails a check: where it diverges, what it got wrong, the fix.

- :mod:`.library`: the hypothesis library (``specs/hypotheses.toml``), known bug classes as
  transforms of the cell, its weights, the composition, or as re-runs of the candidate;
- :mod:`.predict`: what a network with such a bug computes, through ``reference.compose``;
- :mod:`.localise`: the first diverging step, layer, direction and state;
- :mod:`.verdict`: the matching hypothesis at the candidate's precision, and the fix;
- :mod:`.gradients`: which gradients are wrong, by parameter, layer, direction and gate;
- :mod:`.failures`: verdicts attached to check failures as data;
- :mod:`.trial`: one case run, judged and diagnosed (what ``rnnspec diagnose`` prints).

This package sits below :mod:`rnnspec.checks`: the checks import it, never the reverse.
"""

from rnnspec.diagnosis.failures import annotate, attach, diagnosed, explain_gradients
from rnnspec.diagnosis.gradients import GradientVerdict, localise_gradients
from rnnspec.diagnosis.library import (
    HYPOTHESES_PATH,
    Explanation,
    Hypothesis,
    explanations,
    library,
)
from rnnspec.diagnosis.localise import Divergence, localise
from rnnspec.diagnosis.predict import (
    Model,
    Observed,
    canonical_inputs,
    distance,
    predict,
    time_major,
)
from rnnspec.diagnosis.trial import Trial, diagnostic_cases, judged_as, try_case
from rnnspec.diagnosis.verdict import NO_MATCH, Verdict, diagnose, likely_causes

__all__ = [
    "HYPOTHESES_PATH",
    "NO_MATCH",
    "Divergence",
    "Explanation",
    "GradientVerdict",
    "Hypothesis",
    "Model",
    "Observed",
    "Trial",
    "Verdict",
    "annotate",
    "attach",
    "canonical_inputs",
    "diagnose",
    "diagnosed",
    "diagnostic_cases",
    "distance",
    "explain_gradients",
    "explanations",
    "judged_as",
    "library",
    "likely_causes",
    "localise",
    "localise_gradients",
    "predict",
    "time_major",
    "try_case",
]
