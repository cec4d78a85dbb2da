"""Robustness: the edges of the call contract that real implementations get wrong.

Size-one dimensions kept (failure-modes #16), inputs left unmutated, identical runs
bitwise equal (#26), chunked runs with the returned state fed back equal one run (#15),
packed input equal to each sequence run alone (#17, #19), dropout only between layers and
never in eval mode (#27), malformed h0 and 4-D input rejected (#13, #14), unbatched input
equal to a batch of one (#13). Everything but packing runs for NumPy candidates too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from rnnspec.cases import Case, make_case, needs, unsupported
from rnnspec.checks import Record
from rnnspec.checks.assertions import (
    assert_gold_shapes,
    compare_gradients,
    compare_outputs,
    expect_raise,
)
from rnnspec.checks.autodiff import backward, collect, upstream_gradients
from rnnspec.compare import CheckFailure, compare, to_numpy, within
from rnnspec.diagnosis import diagnosed
from rnnspec.errors import Unsupported
from rnnspec.harness import (
    Candidate,
    Outputs,
    as_hx,
    as_states,
    build,
    build_with_gold,
    gold,
    guard,
    make_inputs,
    no_grad,
    quiet,
    require,
    run_quietly,
)
from rnnspec.implementations import reference as generated_reference
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj
from rnnspec.tolerance import Tolerance, for_case

EXACT = Tolerance(0.0, 0.0)  # bitwise: determinism and mutation are not numerical questions
SIZES: dict[str, Any] = dict(input_size=5, hidden_size=7)
PROJ = 3
LENGTHS = (3, 6, 1, 5)  # unsorted, with 1 and T
CHUNKS = ((0, 1), (1, 3), (3, 6))  # a single step, then two longer chunks
DROPOUT = 0.5


def call(candidate: Candidate, x: Any, hx: Any, what: str = "forward") -> tuple[Any, Outputs]:
    """Call the candidate on ``x`` exactly as given: its raw result, and that checked."""
    __tracebackhide__ = True
    impl = candidate.impl
    raw = guard(
        f"{impl.name}: {what}", candidate.case, lambda: impl.call(candidate.instance, x, hx)
    )
    return raw, candidate.unpack(raw)


def _case(cell: str, layers: int = 1, bidirectional: bool = False, **given: Any) -> Case:
    return make_case(cell, layers, bidirectional, **{**SIZES, **given})


def _time_axis(case: Case) -> int:
    return 1 if case.batch is not None and case.config.batch_first else 0


def _steps(value: Any, axis: int, start: int, stop: int) -> Any:
    return value[(slice(None),) * axis + (slice(start, stop),)]


def _set_training(candidate: Candidate, training: bool) -> None:
    """``train()`` or ``eval()`` on instances that have them (NumPy ones rarely do)."""
    method = getattr(candidate.instance, "train" if training else "eval", None)
    if callable(method):
        method()


# --- size-one dimensions ------------------------------------------------------------------


def keep_dimension_cases(cells: Iterable[str]) -> list[Case]:
    """B, T and H of one next to larger ones, time-major and batch_first."""
    sizes = ((1, 1, 1, False), (1, 5, 7, True), (2, 1, 7, False), (3, 5, 1, True))
    return [
        _case(cell, hidden_size=hidden, batch_first=batch_first, steps=T, batch=B)
        for cell in cells
        for B, T, hidden, batch_first in sizes
    ]


@diagnosed
def check_keeps_dimensions(impl: Implementation, case: Case, record: Record) -> None:
    """Size-one batch, time and hidden dimensions survive: shapes and values equal the gold."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    got = run_quietly(candidate)
    compare_outputs(got, expected, case, record)


# --- no mutation ----------------------------------------------------------------------------


def mutation_cases(cells: Iterable[str]) -> list[Case]:
    """Given h0, batch_first; packed two bidirectional layers; and input size equal to what
    the output holds (H, and 2·H bidirectional), where an output written into the input or
    returned as a view of it fits."""
    found = []
    for cell in cells:
        found.append(_case(cell, batch_first=True, steps=6, batch=3))
        found.append(_case(cell, 2, True, steps=6, batch=4, lengths=LENGTHS))
        found.append(_case(cell, input_size=7, steps=6, batch=3))
        found.append(_case(cell, 1, True, input_size=14, steps=6, batch=3))
    return found


def check_no_mutation(impl: Implementation, case: Case, record: Record) -> None:
    """Input (the packed data too) and every h0 are bitwise unchanged by the forward call."""
    __tracebackhide__ = True
    require(impl, case)
    candidate = build(impl, case)
    x, hx = candidate.prepare()
    fed = candidate.pack(x)
    watched = {"input (packed data)": fed.data} if case.packed else {"input": fed}
    if hx is not None:  # a candidate that takes no h0 is watched on its input alone
        watched.update(zip(case.state_names("0"), as_states(hx), strict=True))
    before = {what: candidate.framework.copy(value) for what, value in watched.items()}
    with no_grad(candidate), quiet():
        raw, got = call(candidate, fed, hx)
    candidate.check_no_alias((raw[0], *got.states), (fed, *as_states(hx)))
    for what, value in watched.items():
        record(compare(value, before[what], f"{what} after forward", EXACT, case.label()))


# --- determinism ----------------------------------------------------------------------------


def determinism_cases(cells: Iterable[str]) -> list[Case]:
    """Two bidirectional layers without h0 (a module that keeps state between calls fails)."""
    return [_case(cell, 2, True, steps=6, batch=3, given_state=False) for cell in cells]


@diagnosed
def check_deterministic(impl: Implementation, case: Case, record: Record) -> None:
    """Two identical calls on one instance return bitwise identical outputs and states."""
    __tracebackhide__ = True
    require(impl, case)
    candidate = build(impl, case)
    first = run_quietly(candidate)
    second = run_quietly(candidate)
    compare_outputs(second, first, case, record, tol=EXACT, suffix=" of a second identical run")


# --- chunks with carried state ----------------------------------------------------------------


@needs("initial_state", "direction")  # a reverse direction cannot run in chunks
def chunk_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0; two batch_first layers without; unbatched; projections."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=6, batch=3))
        found.append(_case(cell, 2, batch_first=True, steps=6, batch=3, given_state=False))
        found.append(_case(cell, steps=6, batch=None))
        if supports_proj(cell):
            found.append(_case(cell, 2, proj_size=PROJ, steps=6, batch=3))
    return found


@diagnosed
def check_chunked(impl: Implementation, case: Case, record: Record) -> None:
    """Steps 1, 2-3 and 4-6 run one after another, each chunk getting the state the previous
    one returned (as returned), equal one run over all six steps."""
    __tracebackhide__ = True
    require(impl, case, initial_state=True)
    if case.config.bidirectional:  # a fixed-weight network's own configuration can be
        raise Unsupported("chunks with a carried state equal one run only in one direction")
    candidate, expected = build_with_gold(impl, case)
    axis = _time_axis(case)
    label = f"{case.label()} chunks={[stop - start for start, stop in CHUNKS]}"
    tol = for_case(case)
    x, state = candidate.prepare()
    with no_grad(candidate), quiet():
        for start, stop in CHUNKS:
            what = "forward" if start == 0 else "forward with the state it returned as hx"
            raw, got = call(candidate, _steps(x, axis, start, stop), state, what)
            state = raw[1]
            part = _steps(expected.output, axis, start, stop)
            record(compare(got.output, part, f"output of steps {start}..{stop - 1}", tol, label))
    names = case.state_names()
    for name, got_state, expected_state in zip(names, got.states, expected.states, strict=True):
        record(compare(got_state, expected_state, f"{name} after the last chunk", tol, label))


# --- packed sequences -----------------------------------------------------------------------


def packed_cases(cells: Iterable[str]) -> list[Case]:
    """Unsorted lengths with 1 and T: one layer with h0, two bidirectional batch_first
    layers without, and projections."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=6, batch=4, lengths=LENGTHS))
        found.append(
            _case(
                cell,
                2,
                True,
                batch_first=True,
                steps=6,
                batch=4,
                lengths=LENGTHS,
                given_state=False,
            )
        )
        if supports_proj(cell):
            found.append(_case(cell, 1, True, proj_size=PROJ, steps=6, batch=4, lengths=LENGTHS))
    return found


def _sequence(array: np.ndarray, case: Case, index: int, length: int) -> np.ndarray:
    """Sequence ``index`` cut to its length, as a batch of one in the case's layout."""
    if case.config.batch_first:
        return array[index : index + 1, :length]
    return array[:length, index : index + 1]


@diagnosed
def check_packed(impl: Implementation, case: Case, record: Record) -> None:
    """The packed run equals the gold, and so does each sequence run alone, unpadded.

    Comparing with the gold checks finiteness first; padded positions are zeros by
    construction (``pad_packed_sequence``), the candidate's PackedSequence has none.
    """
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    inputs = candidate.inputs
    alone = build(impl, case.replace(lengths=None, batch=1), replace(inputs, lengths=None))
    with no_grad(candidate), quiet():
        got = candidate.run(*candidate.prepare())
        compare_outputs(got, expected, case, record)
        for index, length in enumerate(case.lengths or ()):
            x = alone.tensor(_sequence(inputs.x, case, index, length))
            hx = as_hx(
                tuple(alone.tensor(state[:, index : index + 1]) for state in inputs.hx or ())
            )
            _, single = call(alone, x, hx)
            sequence = Outputs(
                _sequence(expected.output, case, index, length),
                tuple(state[:, index : index + 1] for state in expected.states),
            )
            where = f" of sequence {index} (length {length}) run alone"
            compare_outputs(single, sequence, case, record, suffix=where)


# --- dropout ----------------------------------------------------------------------------------


def dropout_cases(cells: Iterable[str]) -> list[Case]:
    """dropout=0.5 on two bidirectional layers (eval and training mode) and on one layer."""
    found = []
    for cell in cells:
        found.append(_case(cell, 2, True, dropout=DROPOUT, steps=6, batch=3))
        found.append(_case(cell, 1, dropout=DROPOUT, steps=6, batch=3))
    return found


@diagnosed
def check_dropout_eval(impl: Implementation, case: Case, record: Record) -> None:
    """In eval mode (``eval()`` where the instance has it) dropout is off: output equals the gold."""
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    _set_training(candidate, False)
    got = run_quietly(candidate)
    compare_outputs(got, expected, case, record)


@diagnosed
def check_dropout_training(impl: Implementation, case: Case, record: Record) -> None:
    """In training mode dropout acts only between layers, never after the last one.

    One layer: nothing to drop between, so output and states equal the gold. Several
    layers: the last layer's output at its final step (step 0 for the reverse direction)
    is its final state, untouched by dropout.
    """
    __tracebackhide__ = True
    require(impl, case)
    candidate, expected = build_with_gold(impl, case)
    _set_training(candidate, True)
    with candidate.framework.seeded(case.seed):
        got = run_quietly(candidate)
    config = case.config
    tol = for_case(case)
    label = f"{case.label()} training mode"
    assert_gold_shapes(got, expected, case)
    if config.num_layers == 1:
        compare_outputs(got, expected, case, record, label)
        return
    output, h_n = to_numpy(got.output), to_numpy(got.states[0])
    if case.unbatched:  # as a batch of one, time-major
        output, h_n = output[:, None], h_n[:, None]
    elif config.batch_first:
        output = output.swapaxes(0, 1)
    size = config.output_size
    last = (config.num_layers - 1) * config.num_directions
    ends = [(case.steps - 1, slice(0, size), f":{size}")]
    if config.bidirectional:
        ends.append((0, slice(size, 2 * size), f"{size}:"))
    for direction, (step, features, text) in enumerate(ends):
        index = last + direction
        what = f"output[t={step}, :, {text}] as h_n[{index}], after the last layer"
        record(compare(output[step, :, features], h_n[index], what, tol, label))
    if config.dropout > 0 and within(got.output, expected.output, tol):
        difference = np.abs(to_numpy(got.output) - expected.output)
        raise CheckFailure(
            f"output in training mode equals the output without dropout (max abs difference "
            f"{difference.max():.3g}, {tol}), but should differ: dropout={config.dropout} "
            f"between {config.num_layers} layers was not applied [{label}]",
            kind="mismatch",
        )


# --- malformed input is rejected ----------------------------------------------------------------


@needs("initial_state")
def rejection_cases(cells: Iterable[str]) -> list[Case]:
    """Two bidirectional batch_first layers; unbatched; projections."""
    found = []
    for cell in cells:
        found.append(_case(cell, 2, True, batch_first=True, steps=5, batch=3))
        found.append(_case(cell, steps=5, batch=None))
        if supports_proj(cell):
            found.append(_case(cell, proj_size=PROJ, steps=5, batch=3))
    return found


def _bad_states(case: Case) -> list[tuple[str, list[tuple[int, ...]], bool]]:
    """Every malformed h0: (description, shapes of the tensors passed, passed as a tuple)."""
    names = case.state_names("0")
    shapes = case.config.state_shapes(case.config.resolve(), case.batch)
    several = len(shapes) > 1
    bad: list[tuple[str, list[tuple[int, ...]], bool]] = []
    for index, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        for axis in range(len(shape)):
            wrong = (*shape[:axis], shape[axis] + 1, *shape[axis + 1 :])
            changed = [*shapes[:index], wrong, *shapes[index + 1 :]]
            bad.append((f"{name} of shape {wrong} (should be {shape})", changed, several))
    listed = ", ".join(names)
    if case.batch is None:
        batched: list[tuple[int, ...]] = [(shape[0], 1, shape[1]) for shape in shapes]
        bad.append((f"3-D {listed} {batched} with unbatched input", batched, several))
    else:
        flat: list[tuple[int, ...]] = [(shape[0], shape[2]) for shape in shapes]
        bad.append((f"2-D {listed} {flat} with batched input", flat, several))
    if several:
        bad.append((f"{names[0]} alone where the tuple ({listed}) is due", shapes[:1], False))
    return bad


def input_rank_cases(cells: Iterable[str]) -> list[Case]:
    """One batched case per cell: the rank check does not depend on the configuration."""
    return [_case(cell, steps=5, batch=3) for cell in cells]


def check_rejects_bad_state(impl: Implementation, case: Case, record: Record) -> None:
    """h0 (c0) with any dimension off by one, of the wrong rank, or in the wrong structure
    (a single tensor where the tuple is due) raises."""
    __tracebackhide__ = True
    require(impl, case, initial_state=True)
    candidate = build(impl, case)
    x, _ = candidate.prepare()
    for description, shapes, as_tuple in _bad_states(case):
        states = tuple(candidate.tensor(np.zeros(shape)) for shape in shapes)
        expect_raise(candidate, x, states if as_tuple else states[0], f"hx = {description}")


def check_rejects_4d_input(impl: Implementation, case: Case, record: Record) -> None:
    """A 4-D input raises instead of being reshaped or broadcast."""
    __tracebackhide__ = True
    require(impl, case)
    candidate = build(impl, case)
    x, _ = candidate.prepare()
    x = x[(None,) * (4 - x.ndim)]
    expect_raise(candidate, x, None, f"a 4-D input of shape {tuple(x.shape)}")


# --- unbatched input ------------------------------------------------------------------------------


def unbatched_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0; two bidirectional batch_first layers without."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=5, batch=None))
        found.append(_case(cell, 2, True, batch_first=True, steps=5, batch=None, given_state=False))
    return found


@diagnosed
def check_unbatched(impl: Implementation, case: Case, record: Record) -> None:
    """Unbatched input equals the gold, and so does the same input as a batch of one."""
    __tracebackhide__ = True
    require(impl, case)
    require(impl, case.replace(batch=1))  # the same input as a batch of one
    candidate, expected = build_with_gold(impl, case)
    batch_axis = 0 if case.config.batch_first else 1
    with no_grad(candidate), quiet():
        got = candidate.run(*candidate.prepare())
        compare_outputs(got, expected, case, record)
        x, hx = candidate.prepare()
        batched_hx = as_hx(tuple(state[:, None] for state in as_states(hx)))
        batch_x = x[None] if batch_axis == 0 else x[:, None]
        _, batched = call(candidate, batch_x, batched_hx)
    as_batch = Outputs(
        np.expand_dims(expected.output, batch_axis),
        tuple(np.expand_dims(state, 1) for state in expected.states),
    )
    label = case.label().replace("unbatched", "B=1 (the unbatched input as a batch of one)")
    compare_outputs(batched, as_batch, case, record, label)


# --- non-contiguous input, state and upstream gradients (pytorch#619) ------------------------


def noncontiguous_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0; two bidirectional batch_first layers with h0; projections."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=5, batch=3))
        found.append(_case(cell, 2, True, batch_first=True, steps=5, batch=3))
        if supports_proj(cell):
            found.append(_case(cell, proj_size=PROJ, steps=5, batch=3))
    return found


def noncontiguous(value: Any) -> Any:
    """The same values as a transposed view: strides not those of a contiguous array."""
    if hasattr(value, "contiguous"):
        return value.transpose(0, 1).contiguous().transpose(0, 1)
    return np.ascontiguousarray(value.swapaxes(0, 1)).swapaxes(0, 1)


def check_noncontiguous(impl: Implementation, case: Case, record: Record) -> None:
    """Input and h0 (c0) passed as transposed views give the gold; with gradients, so do
    input, h0 and weight gradients from transposed-view upstream gradients."""
    __tracebackhide__ = True
    require(impl, case)
    if impl.framework not in ("torch", "numpy"):
        raise Unsupported(f"{impl.framework} arrays have no strides to make non-contiguous")
    candidate, expected = build_with_gold(impl, case)
    x, hx = candidate.prepare()
    views = as_hx(tuple(noncontiguous(state) for state in as_states(hx)))
    with no_grad(candidate), quiet():
        _, got = call(candidate, noncontiguous(x), views, "forward on transposed views")
    compare_outputs(got, expected, case, record, suffix=" for non-contiguous input and hx")
    if impl.framework != "torch" or unsupported(impl.effective_capabilities, case, gradients=True):
        return
    import torch

    upstream = upstream_gradients(case)
    gold_case = case.replace(dtype="float64", device="cpu", precision=None)
    with quiet():
        wanted = backward(build(generated_reference(), gold_case, candidate.inputs), upstream)
    fresh = build(impl, case, candidate.inputs)
    x, hx = fresh.prepare(requires_grad=True)
    views = as_hx(tuple(noncontiguous(state) for state in as_states(hx)))
    with quiet():
        _, got = call(fresh, noncontiguous(x), views, "forward on transposed views")
        values = (got.output, *got.states)
        grads = [noncontiguous(fresh.tensor(gradient)) for gradient in upstream.values()]
        guard(
            f"{impl.name}: backward from transposed-view gradients",
            case,
            lambda: torch.autograd.backward(values, grads),
        )
    compare_gradients(collect(fresh, x, hx), wanted, case, record, "grad (non-contiguous)")


# --- weights changed after a first call (pytorch#65688, mxnet#17479) -------------------------

CHANGED_SEED = 5_000_011  # the weights a candidate is first built and run with


def weight_update_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0; two bidirectional layers without; projections."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=5, batch=3))
        found.append(_case(cell, 2, True, steps=5, batch=3, given_state=False))
        if supports_proj(cell):
            found.append(_case(cell, proj_size=PROJ, steps=5, batch=3))
    return found


@diagnosed
def check_weight_update(impl: Implementation, case: Case, record: Record) -> None:
    """After a first call, weights written into the instance (through its loader, in place
    for torch.nn's names) and then others through ``load_state_dict`` are the ones the next
    call computes with: a module caching its flattened weights fails."""
    __tracebackhide__ = True
    require(impl, case)
    if impl.read_weights is not None:
        raise Unsupported(f"{impl.name} has fixed weights of its own: none are loaded into it")
    inputs = make_inputs(case, impl)
    first = make_inputs(case.replace(seed=case.seed + CHANGED_SEED), impl)
    candidate = build(impl, case, replace(inputs, weights=first.weights))
    run_quietly(candidate)
    weights = {name: candidate.tensor(value) for name, value in inputs.weights.items()}
    guard(
        f"{impl.name}: load_weights after a first call",
        case,
        lambda: impl.load_weights(candidate.instance, weights),
    )
    got = run_quietly(candidate)
    compare_outputs(got, gold(case, inputs), case, record, suffix=" after weights were reloaded")
    load_state_dict = getattr(candidate.instance, "load_state_dict", None)
    if not callable(load_state_dict):
        return
    donor = build(impl, case, replace(inputs, weights=first.weights))
    guard(
        f"{impl.name}: load_state_dict after a call",
        case,
        lambda: load_state_dict(donor.instance.state_dict()),
    )
    got = run_quietly(candidate)
    expected = gold(case, replace(inputs, weights=first.weights))
    compare_outputs(got, expected, case, record, suffix=" after load_state_dict")


# --- short sequences in a packed batch; the padding region ---------------------------------------


def short_packed_cases(cells: Iterable[str]) -> list[Case]:
    """Packed batches of length-1 sequences only (T = 1), and lengths 1 and T mixed on two
    bidirectional layers. Zero-length sequences are not packed: torch's
    pack_padded_sequence refuses them (README, findings)."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=1, batch=3, lengths=(1, 1, 1)))
        found.append(_case(cell, 2, True, steps=4, batch=3, lengths=(1, 4, 1), given_state=False))
    return found


def check_padding_zero(impl: Implementation, case: Case, record: Record) -> None:
    """The packed output, padded, is zero past each sequence's length (the PackedSequence
    the candidate returns covers each sequence's steps, no more)."""
    __tracebackhide__ = True
    require(impl, case)
    candidate = build(impl, case)
    x, hx = candidate.prepare()
    with no_grad(candidate), quiet():
        _, got = call(candidate, candidate.pack(x), hx)
    output = to_numpy(got.output)
    output = output.swapaxes(0, 1) if case.config.batch_first else output
    for index, length in enumerate(case.lengths or ()):
        region = output[length:, index]
        what = f"output[t={length}.., sequence {index}] (past its length {length})"
        record(compare(region, np.zeros_like(region), what, EXACT, case.label()))


# --- batch invariance (pytorch#32023, #180744) ----------------------------------------------------


def batch_invariance_cases(cells: Iterable[str]) -> list[Case]:
    """B = 4: one layer with h0; two bidirectional batch_first layers without."""
    found = []
    for cell in cells:
        found.append(_case(cell, steps=5, batch=4))
        found.append(_case(cell, 2, True, batch_first=True, steps=5, batch=4, given_state=False))
    return found


def _batch_entries(value: Any, axis: int, order: list[int]) -> Any:
    return value[(slice(None),) * axis + (order,)]


def check_batch_invariant(impl: Implementation, case: Case, record: Record) -> None:
    """Each sample's output and states are the same (within the case's tolerance) in its
    batch, in the batch reversed, and run alone."""
    __tracebackhide__ = True
    require(impl, case)
    if case.unbatched:
        raise Unsupported("batch invariance needs batched input (the candidate takes none)")
    candidate = build(impl, case)
    inputs = candidate.inputs
    batch_axis = 0 if case.config.batch_first else 1
    full = run_quietly(candidate)
    batch = case.batch or 1
    runs: list[tuple[str, list[int]]] = [("in the batch reversed", list(range(batch))[::-1])]
    runs += [(f"run alone (sample {index})", [index]) for index in range(batch)]
    for where, order in runs:
        subset = replace(
            inputs,
            x=_batch_entries(inputs.x, batch_axis, order),
            hx=tuple(state[:, order] for state in inputs.hx) if inputs.hx else None,
        )
        part = build(impl, case.replace(batch=len(order)), subset)
        got = run_quietly(part)
        expected = Outputs(
            _batch_entries(to_numpy(full.output), batch_axis, order),
            tuple(to_numpy(state)[:, order] for state in full.states),
        )
        compare_outputs(got, expected, case, record, suffix=f" {where} vs in its batch")


# --- dropout under a fixed seed ---------------------------------------------------------------


def seeded_dropout_cases(cells: Iterable[str]) -> list[Case]:
    """dropout=0.5 on two bidirectional layers."""
    return [_case(cell, 2, True, dropout=DROPOUT, steps=6, batch=3) for cell in cells]


def check_dropout_seeded(impl: Implementation, case: Case, record: Record) -> None:
    """In training mode, two runs after ``torch.manual_seed`` with the same seed are
    bitwise equal: the dropout masks come from torch's generator."""
    __tracebackhide__ = True
    require(impl, case)
    candidate = build(impl, case)
    _set_training(candidate, True)
    with candidate.framework.seeded(case.seed):
        first = run_quietly(candidate)
    with candidate.framework.seeded(case.seed):
        second = run_quietly(candidate)
    label = f"{case.label()} training mode"
    suffix = " of a second training run with the same seed"
    compare_outputs(second, first, case, record, label, tol=EXACT, suffix=suffix)
