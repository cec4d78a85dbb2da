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
from rnnspec.cases import Case, make_case, needs, unsupported
from rnnspec.checks import Record
from rnnspec.checks.assertions import check_dtypes, compare_outputs
from rnnspec.diagnosis import diagnosed
from rnnspec.harness import (
    Outputs,
    Unsupported,
    as_hx,
    build_with_gold,
    guard,
    no_grad,
    quiet,
    require,
    run_quietly,
)
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj
from rnnspec.tolerance import tolerance

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


@diagnosed
def check_dtype(impl: Implementation, case: Case, record: Record) -> None:
    """The run keeps the input's dtype and is as close to the gold as the dtype allows."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    got = run_quietly(candidate)
    check_dtypes(got, case)
    compare_outputs(got, expected, case, record)


# --- autocast (pytorch#88136, #36428, #45048) -----------------------------------------------

AUTOCAST = {"cpu": "bfloat16", "cuda": "float16"}  # the dtype autocast computes in, by device


@needs("dtype")
def autocast_cases(cells: Iterable[str]) -> list[Case]:
    """float32 networks under autocast, on the CPU and on CUDA (skipped without one): one
    layer with h0, two bidirectional batch_first layers without, packed, projections."""
    found = []
    for device in AUTOCAST:
        for cell in cells:
            found += [
                _case(cell, "float32", device=device),
                _case(cell, "float32", 2, True, batch_first=True, given_state=False, device=device),
                _case(cell, "float32", 1, True, lengths=LENGTHS, device=device),
            ]
            if supports_proj(cell):
                found.append(_case(cell, "float32", proj_size=PROJ, device=device))
    return found


def check_autocast_dtypes(got: Outputs, case: Case, fast: str) -> None:
    """Output and every state are in the input's dtype or the autocast dtype: torch.nn 2.13
    returns either, by cell and path (README, findings)."""
    __tracebackhide__ = True
    for name, value in zip(case.result_names(), (got.output, *got.states), strict=True):
        found = compare.dtype_name(value)
        if found not in (case.dtype, fast):
            raise compare.CheckFailure(
                f"{name} has dtype {found} under {case.device} autocast to {fast}, but should "
                f"have {case.dtype} (the input's) or {fast} [{case.label()}]",
                kind="dtype",
            )


def check_autocast(impl: Implementation, case: Case, record: Record) -> None:
    """Under ``torch.autocast`` (bfloat16 on the CPU, float16 on CUDA) the run is within the
    autocast dtype's tolerance of the gold, in the input's or the autocast dtype; unpacked
    and one-directional, the state it returns, fed back for the second half of the steps,
    continues the run."""
    __tracebackhide__ = True
    require(impl, case, transform="autocast")
    import torch

    if case.device == "cuda" and not torch.cuda.is_available():
        raise Unsupported("CUDA not available")
    candidate, expected = build_with_gold(impl, case)
    fast = AUTOCAST[case.device]
    tol = tolerance(fast, case.steps, case.config.num_layers)
    label = f"{case.label()} autocast={fast}"
    x, hx = candidate.prepare()
    axis = 1 if case.config.batch_first else 0
    half = case.steps // 2

    def run_under_autocast(x: Any, hx: Any) -> Outputs:
        raw = guard(
            f"{impl.name} under autocast",
            case,
            lambda: impl.call(candidate.instance, candidate.pack(x), hx),
            kind="unsupported-transform",
        )
        got = candidate.unpack(raw, dtypes=(case.dtype, fast))
        check_autocast_dtypes(got, case, fast)
        return got

    with no_grad(candidate), quiet(), torch.autocast(case.device, getattr(torch, fast)):
        got = run_under_autocast(x, hx)
        compare_outputs(got, expected, case, record, label, tol=tol, suffix=" under autocast")
        if case.packed or case.config.bidirectional:  # a reverse direction starts at the end
            return
        if unsupported(impl.effective_capabilities, case, initial_state=True):  # takes no h0
            return
        first = run_under_autocast(x.narrow(axis, 0, half), hx)
        second = run_under_autocast(x.narrow(axis, half, case.steps - half), as_hx(first.states))
    rest = Outputs(expected.output.take(range(half, case.steps), axis), expected.states)
    suffix = f" of steps {half}.. with the state autocast returned"
    compare_outputs(second, rest, case, record, label, tol=tol, suffix=suffix)
