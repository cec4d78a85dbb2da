"""Device: outputs and states live on the input's device, and state is never made elsewhere.

The meta device needs no GPU and exposes the three ways state lands on the wrong device
(failure-modes #23): ``torch.zeros`` without ``device=``, a hard-coded ``.cuda()``, and a
tensor kept as a plain attribute (``module.to()`` moves only parameters and buffers).
Meta tensors hold no values, so meta checks compare device, dtype and shape; CPU and CUDA
checks also compare values with the gold. Packed input is not run on meta: PyTorch's own
``pad_packed_sequence`` cannot run there (torch 2.13: "Cannot copy out of meta tensor"),
so a candidate that uses it would fail through no fault of its own. torch.nn's RNN, GRU
and LSTM run every other configuration on meta, in every dtype.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from rnnspec import frameworks
from rnnspec.cases import Case, make_case, needs
from rnnspec.checks import Record
from rnnspec.checks.assertions import (
    assert_gold_shapes,
    check_dtypes,
    compare_outputs,
    expect_raise,
)
from rnnspec.compare import CheckFailure
from rnnspec.diagnosis import diagnosed
from rnnspec.errors import Unsupported
from rnnspec.harness import (
    Candidate,
    Outputs,
    as_hx,
    as_states,
    build,
    build_with_gold,
    no_grad,
    quiet,
    require,
    run_quietly,
)
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj

META_STEPS = 2  # torch runs RNNs on meta step by step through Python decompositions: slow
LENGTHS = (4, 6, 1)
SIZES: dict[str, Any] = dict(steps=6, batch=3, input_size=5, hidden_size=7)
PROJ = 3
HINT = "state created without device=, or a tensor not registered as buffer?"


def _case(
    cell: str,
    device: str,
    dtype: str,
    layers: int = 1,
    bidirectional: bool = False,
    **given: Any,
) -> Case:
    return make_case(cell, layers, bidirectional, device=device, dtype=dtype, **{**SIZES, **given})


def meta_cases(cells: Iterable[str]) -> list[Case]:
    """With and without h0, stacked bidirectional, batch_first, unbatched, projections, and
    stacked batch_first without h0 (the seeds' ``torch.zeros(layers, x.size(0), H)``)."""
    found = []
    for cell in cells:
        found += [
            _case(cell, "meta", "float32", steps=META_STEPS),
            _case(cell, "meta", "float64", steps=META_STEPS, given_state=False),
            _case(cell, "meta", "float32", 2, True, steps=META_STEPS, given_state=False),
            _case(cell, "meta", "bfloat16", steps=META_STEPS, batch_first=True),
            _case(cell, "meta", "float16", steps=META_STEPS, batch=None, given_state=False),
            _case(
                cell, "meta", "float32", 2, steps=META_STEPS, batch_first=True, given_state=False
            ),
        ]
        if supports_proj(cell):
            found.append(_case(cell, "meta", "float32", 2, True, steps=META_STEPS, proj_size=PROJ))
    return found


def zero_state_cases(cells: Iterable[str]) -> list[Case]:
    """hx=None on the CPU in float64 and float32: batched, stacked batch_first, unbatched."""
    found = []
    for cell in cells:
        found += [
            _case(cell, "cpu", "float64", given_state=False),
            _case(cell, "cpu", "float32", 2, True, batch_first=True, given_state=False),
            _case(cell, "cpu", "float64", batch=None, given_state=False),
        ]
    return found


def cuda_cases(cells: Iterable[str]) -> list[Case]:
    """float64 with h0, float32 stacked bidirectional without, float32 packed."""
    found = []
    for cell in cells:
        found += [
            _case(cell, "cuda", "float64"),
            _case(cell, "cuda", "float32", 2, True, given_state=False),
            _case(cell, "cuda", "float32", 1, True, lengths=LENGTHS),
        ]
    return found


@needs("initial_state")
def mixed_cases(cells: Iterable[str]) -> list[Case]:
    """Input on the CPU with state on meta (one and two bidirectional batch_first layers),
    and input on CUDA with state on the CPU."""
    found = []
    for cell in cells:
        found += [
            _case(cell, "cpu", "float32"),
            _case(cell, "cpu", "float32", 2, True, batch_first=True),
            _case(cell, "cuda", "float32"),
        ]
    return found


def check_placement(candidate: Candidate, got: Outputs, expected: Outputs) -> None:
    """Output and states are on the case's device, in its dtype, with the gold's shapes."""
    __tracebackhide__ = True
    case = candidate.case
    for name, value in zip(case.result_names(), (got.output, *got.states), strict=True):
        device = candidate.framework.device_of(value)
        if device != case.device:
            raise CheckFailure(
                f"{name} is on {device}, but should be on {case.device} (the input's device) "
                f"— {HINT} [{case.label()}]",
                kind="device",
            )
    check_dtypes(got, case)
    assert_gold_shapes(got, expected, case)


@diagnosed
def check_meta(impl: Implementation, case: Case, record: Record) -> None:
    """Built on meta and run on meta input: no error, everything on meta with the right
    dtype and shape. A raise names the likely cause: state or a tensor left on the CPU."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    x, hx = candidate.prepare()
    try:
        with no_grad(candidate), quiet():
            result = impl.call(candidate.instance, candidate.pack(x), hx)
    except Unsupported:
        raise
    except Exception as error:
        raise CheckFailure(
            f"{impl.name}: forward on meta raised {type(error).__name__}: {error} — {HINT} "
            f"(a candidate that needs values on the host should not declare 'meta') "
            f"[{case.label()}]",
            kind="device",
        ) from error
    check_placement(candidate, candidate.unpack(result), expected)


@diagnosed
def check_zero_state(impl: Implementation, case: Case, record: Record) -> None:
    """hx=None starts from zeros in the input's dtype and device: the gold, and (for a
    candidate that takes h0) the same as a run with explicit zero states."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    with no_grad(candidate), quiet():
        got = candidate.run(candidate.prepare()[0], None)
    check_placement(candidate, got, expected)
    compare_outputs(got, expected, case, record)
    if not impl.capabilities.initial_state:
        return
    shapes = case.config.state_shapes(case.config.resolve(), case.batch)
    with no_grad(candidate), quiet():
        zeros = tuple(candidate.tensor(np.zeros(shape)) for shape in shapes)
        explicit = candidate.run(candidate.prepare()[0], as_hx(zeros))
    label = f"{case.label()} vs explicit zero hx"
    compare_outputs(got, explicit, case, record, label, suffix=" with hx=None")


@diagnosed
def check_cuda(impl: Implementation, case: Case, record: Record) -> None:
    """On CUDA: everything stays on the GPU and equals the gold like parity (TF32 off:
    float32 is judged as float32, and the policy has no TF32 tolerance)."""
    __tracebackhide__ = True
    require(impl, case)
    frameworks.get(impl.framework).require_device("cuda")
    candidate, expected = build_with_gold(impl, case)
    with candidate.framework.full_precision():
        got = run_quietly(candidate)
    check_placement(candidate, got, expected)
    compare_outputs(got, expected, case, record)


def check_mixed_devices(impl: Implementation, case: Case, record: Record) -> None:
    """State on another device than the input (all of it, or only c0) raises."""
    __tracebackhide__ = True
    other = "cpu" if case.device == "cuda" else "meta"
    require(impl, case, initial_state=True)
    require(impl, case.replace(device=other))
    if "cuda" in (case.device, other):
        frameworks.get(impl.framework).require_device("cuda")
    candidate = build(impl, case)
    x, hx = candidate.prepare()
    states = as_states(hx)
    names = case.state_names("0")
    move = candidate.framework.to_device
    variants = [(", ".join(names), tuple(move(state, other) for state in states))]
    if len(states) > 1:
        variants.append((names[-1], (*states[:-1], move(states[-1], other))))
    for what, moved in variants:
        expect_raise(
            candidate,
            x,
            as_hx(moved),
            f"{what} on {other} with input on {case.device}",
            kind="device",
        )
