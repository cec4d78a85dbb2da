"""Dtype: output and states keep the input's dtype, and each dtype meets its tolerance.

Every case runs in float64, float32, bfloat16 and float16 (each skipped unless declared)
and is judged against the float64 gold with ``tolerance.for_case(case)``. Cases without
h0 catch a zero state created in a hard-coded dtype (failure-modes #24): float32 zeros
in a float64 network either raise or cost float64 its precision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rnnspec import compare
from rnnspec.cases import Case, make_case, needs
from rnnspec.checks import Record
from rnnspec.checks.parity import compare_outputs
from rnnspec.diagnosis import diagnosed
from rnnspec.harness import Outputs, build_with_gold, require, run_quietly
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj

DTYPES = ("float64", "float32", "bfloat16", "float16")
SIZES: dict[str, Any] = dict(steps=6, batch=3, input_size=5, hidden_size=7)
LENGTHS = (4, 6, 1)
PROJ = 3


def _case(
    cell: str, dtype: str, layers: int = 1, bidirectional: bool = False, **given: Any
) -> Case:
    return make_case(cell, layers, bidirectional, dtype=dtype, **SIZES, **given)


@needs("dtype")
def cases(cells: Iterable[str]) -> list[Case]:
    """Per cell and dtype: one layer with and without h0, two bidirectional batch_first
    layers, packed unsorted lengths without h0, and projections where the cell has them."""
    found = []
    for cell in cells:
        has_proj = supports_proj(cell)
        for dtype in DTYPES:
            found += [
                _case(cell, dtype),
                _case(cell, dtype, given_state=False),
                _case(cell, dtype, 2, True, batch_first=True),
                _case(cell, dtype, 1, True, lengths=LENGTHS, given_state=False),
            ]
            if has_proj:
                found.append(_case(cell, dtype, 2, False, proj_size=PROJ))
    return found


def check_dtypes(got: Outputs, case: Case) -> None:
    """Output and every final state have the case's (the input's) dtype."""
    __tracebackhide__ = True
    for name, value in zip(case.result_names(), (got.output, *got.states), strict=True):
        compare.check_dtype(value, case.dtype, name, case.label())


@diagnosed
def check_dtype(impl: Implementation, case: Case, record: Record) -> None:
    """The run keeps the input's dtype and is as close to the gold as the dtype allows."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    got = run_quietly(candidate)
    check_dtypes(got, case)
    compare_outputs(got, expected, case, record)
