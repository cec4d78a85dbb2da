"""Gradient localisation: which parameters' gradients are wrong, by layer, direction and gate.

Every gradient is compared, not only the first that fails: weights and biases are split
into their gate blocks (rows), initial states into their layer and direction slices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.compare import allowed, to_numpy
from rnnspec.diagnosis.localise import DIRECTIONS
from rnnspec.spec import composition
from rnnspec.tolerance import Tolerance

CANONICAL = re.compile(r"(?P<parameter>\w+?)_l(?P<layer>\d+)(?P<reverse>_reverse)?")


@dataclass(frozen=True)
class WrongGradient:
    """One gradient outside the tolerance: where in the network, and which parts."""

    name: str  # weight_hh_l1_reverse, input, h0, ...
    parts: tuple[str, ...]  # wrong gate blocks, or layer/direction slices of h0 and c0
    error: float  # worst absolute error (inf: missing or not finite)

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.parts)})" if self.parts else self.name


@dataclass(frozen=True)
class GradientVerdict:
    """Every wrong gradient of a case; ``right`` names those within the tolerance."""

    config: str
    cell: str
    wrong: tuple[WrongGradient, ...]
    right: tuple[str, ...]
    forward: Any = None  # the forward run's Verdict, when the forward run is wrong too

    @property
    def cause(self) -> str | None:
        if self.forward is not None and self.forward.cause is not None:
            return str(self.forward.cause)
        parameters = dict.fromkeys(CANONICAL.sub(r"\g<parameter>", w.name) for w in self.wrong)
        missing = all(wrong.parts == ("missing",) for wrong in self.wrong)
        what = "missing gradient" if missing else "wrong gradient"
        return f"{what} of {', '.join(parameters)}" if parameters else None

    @property
    def fix(self) -> str:
        return str(self.forward.fix) if self.forward is not None else ""

    def __str__(self) -> str:
        text = f"the forward run is wrong: {self.forward}\n" if self.forward is not None else ""
        if not self.wrong:
            return text + "every gradient is within the tolerance on a re-run"
        text += f"{len(self.wrong)} of {len(self.wrong) + len(self.right)} gradients wrong: "
        text += "; ".join(str(wrong) for wrong in self.wrong)
        return text + (f"; right: {', '.join(self.right)}" if self.right else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self),
            "cell": self.cell,
            "cause": self.cause,
            "fix": self.fix,
            "wrong": [
                {"name": w.name, "parts": list(w.parts), "error": w.error} for w in self.wrong
            ],
            "right": list(self.right),
            "forward": None if self.forward is None else self.forward.as_dict(),
            "config": self.config,
        }


def localise_gradients(
    case: Case,
    got: Mapping[str, Any],
    expected: Mapping[str, Any],
    tol: Tolerance,
    forward: Any = None,
) -> GradientVerdict:
    """Compare every expected gradient with the candidate's, part by part."""
    wrong, right = [], []
    for name, value in expected.items():
        if value is None:
            continue
        wanted = to_numpy(value)
        found = got.get(name)
        if found is None:
            wrong.append(WrongGradient(name, ("missing",), float("inf")))
            continue
        array = to_numpy(found)
        if array.shape != wanted.shape:
            wrong.append(WrongGradient(name, (f"shape {array.shape}",), float("inf")))
            continue
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(array - wanted) <= allowed(wanted, tol))
        if not bad.any():
            right.append(name)
            continue
        error = (
            float(np.abs(array - wanted)[bad].max()) if np.isfinite(array).all() else float("inf")
        )
        wrong.append(WrongGradient(name, _parts(case, name, bad), error))
    return GradientVerdict(case.label(), case.config.cell, tuple(wrong), tuple(right), forward)


def _parts(case: Case, name: str, bad: np.ndarray) -> tuple[str, ...]:
    """The gate blocks (weights, biases) or layer/direction slices (h0, c0) that are wrong."""
    config, cell = case.config, case.config.resolve()
    match = CANONICAL.fullmatch(name)
    if match is not None:
        blocks = cell.parameter(match["parameter"]).blocks
        if len(blocks) <= 1:
            return ()
        rows = [bool(row.any()) for row in bad.reshape(len(blocks), -1)]
        wrong = [block for block, is_bad in zip(blocks, rows, strict=True) if is_bad]
        return ("all gates",) if len(wrong) == len(blocks) else tuple(f"gate {b}" for b in wrong)
    if name == "input" or bad.ndim < 2:
        return ()
    index_of = composition().index
    slices = [
        f"layer {layer} {DIRECTIONS[direction]}"
        for layer in range(config.num_layers)
        for direction in range(config.num_directions)
        if bad[index_of(layer, direction, config.num_directions)].any()
    ]
    return tuple(slices) if config.num_layers * config.num_directions > 1 else ()
