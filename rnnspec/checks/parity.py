"""Parity: forward outputs and final states against the float64 NumPy gold."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from rnnspec.cases import Case, make_case, needs
from rnnspec.checks import Record
from rnnspec.checks.assertions import compare_outputs
from rnnspec.compare import CheckFailure
from rnnspec.diagnosis import annotate
from rnnspec.harness import build, gold, make_inputs, require, run_quietly
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj

SIZES: dict[str, Any] = dict(steps=6, batch=3, input_size=5, hidden_size=7)
PROJ = 3


def cases(cells: Iterable[str]) -> list[Case]:
    """Every cell over layers x directions x bias x batch_first x proj x h0 given or not."""
    grid = itertools.product(
        cells, (1, 2), (False, True), (True, False), (False, True), (True, False)
    )
    return [
        make_case(
            cell,
            layers,
            bidirectional,
            bias=bias,
            batch_first=batch_first,
            proj_size=proj,
            given_state=given_state,
            **SIZES,
        )
        for cell, layers, bidirectional, bias, batch_first, given_state in grid
        for proj in ((0, PROJ) if supports_proj(cell) else (0,))
    ]


def check_forward(impl: Implementation, case: Case, record: Record, diagnose: bool = True) -> None:
    """Output, h_n (and c_n) equal the gold within the tolerance policy; a failure is
    diagnosed unless ``diagnose`` is false (at T = 1000 the diagnosis takes minutes)."""
    __tracebackhide__ = True
    require(impl, case)
    inputs = make_inputs(case, impl)
    expected = gold(case, inputs)
    got = run_quietly(build(impl, case, inputs))
    try:
        compare_outputs(got, expected, case, record)
    except CheckFailure as failure:
        if diagnose:
            annotate(failure, case, inputs, got)
        raise


# --- sizes real kernels switch on (pytorch#133751, ROCm/rocm-libraries#10551, onnxruntime#4628) ---

LARGE = ((256, 1000), (512, 1000))  # (hidden size, T): blocked and oneDNN paths, long loops
LONG_STEPS = 10_000


def square_cases(cells: Iterable[str]) -> list[Case]:
    """Input size == hidden size and == 2 * hidden size, where a transposed or mixed-up
    weight has the right shape: one layer, and two layers with every layer's input of the
    same size (I = H one-directional, I = 2H bidirectional)."""
    found = []
    for cell in cells:
        hidden = SIZES["hidden_size"]
        base = dict(steps=6, batch=3, hidden_size=hidden)
        found += [
            make_case(cell, input_size=hidden, **base),
            make_case(cell, input_size=2 * hidden, dtype="float32", **base),
            make_case(cell, 2, False, input_size=hidden, given_state=False, **base),
            make_case(cell, 2, True, input_size=2 * hidden, batch_first=True, **base),
        ]
    return found


@needs("dtype")
def large_cases(cells: Iterable[str]) -> list[Case]:
    """float32 at hidden sizes 256 and 512 over T = 1000 (B = 2, input size H / 2), and
    T = 10 000 at hidden size 16: finite and within the tolerance at every step."""
    found = []
    for cell in cells:
        for hidden, steps in LARGE:
            found.append(
                make_case(
                    cell,
                    input_size=hidden // 2,
                    hidden_size=hidden,
                    steps=steps,
                    batch=2,
                    dtype="float32",
                )
            )
        found.append(
            make_case(
                cell, input_size=5, hidden_size=16, steps=LONG_STEPS, batch=2, dtype="float32"
            )
        )
    return found
