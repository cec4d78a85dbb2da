"""The tolerance policy: how far a candidate may be from the float64 gold, by dtype and length.

    atol = rtol = eps(dtype) * (4 + log2(T) / 2) * sqrt(num_layers),  at least 1e-12

eps is the dtype's machine epsilon (float64 2.2e-16, float32 1.2e-7, float16 9.8e-4,
bfloat16 7.8e-3). Calibration, re-measured by ``tests/test_tolerance.py``: PyTorch's own
CPU kernels (torch 2.13), with weights rounded from the float64 gold, err by 0.6 to 2.2 eps
over Elman, GRU and LSTM, 1 to 3 bidirectional layers and T from 1 to 100, growing slowly
with T and not measurably with depth; the bound sits about 3x above that. A swapped gate,
a missing bias or a missing nonlinearity moves outputs by 1e-2 or more. Comparisons follow
``torch.testing``: ``|got - expected| <= atol + rtol * |expected|``. Gradients sum over
every step, so they get ``GRADIENT_FACTOR`` times the bound.

:func:`for_case` is what the checks call: a case whose candidate computes in a lower
precision than its dtype (``Capabilities.precision``, carried as ``Case.precision``) is
judged at that precision's bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rnnspec.cases import Case

EPS = {
    "float64": 2.220446049250313e-16,
    "float32": 1.1920928955078125e-07,
    "float16": 0.0009765625,
    "bfloat16": 0.0078125,
}
FLOOR = 1e-12
GRADIENT_FACTOR = 4.0


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float

    def scaled(self, factor: float) -> Tolerance:
        return Tolerance(self.atol * factor, self.rtol * factor)

    def __str__(self) -> str:
        return f"atol={self.atol:.2g}, rtol={self.rtol:.2g}"


def tolerance(dtype: str, steps: int, num_layers: int = 1, gradient: bool = False) -> Tolerance:
    """The allowed error against float64 gold for one output of a ``dtype`` network."""
    if dtype not in EPS:
        raise ValueError(f"no tolerance for dtype {dtype!r} (known: {', '.join(EPS)})")
    growth = (4.0 + math.log2(max(steps, 1)) / 2.0) * math.sqrt(max(num_layers, 1))
    bound = max(EPS[dtype] * growth, FLOOR)
    result = Tolerance(bound, bound)
    return result.scaled(GRADIENT_FACTOR) if gradient else result


def computes_in(case: Case) -> str:
    """The precision the case is judged at: its dtype, or the candidate's declared
    precision where that is coarser."""
    if case.precision is None or EPS[case.precision] <= EPS[case.dtype]:
        return case.dtype
    return case.precision


def for_case(case: Case, gradient: bool = False) -> Tolerance:
    """The allowed error for one output (``gradient=True``: one gradient) of ``case``."""
    return tolerance(computes_in(case), case.steps, case.config.num_layers, gradient)
