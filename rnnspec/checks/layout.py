"""Layout: which slice of h_n (and c_n) holds which layer and direction, and where outputs sit.

The expected stack is rebuilt from single-layer, single-direction gold runs: layer ``l``
direction ``d`` runs alone on the concatenated outputs of layer ``l - 1`` (the reverse
direction on each sequence reversed within its length), starting from ``h0[l * D + d]``.
Its final state must sit in ``h_n[l * D + d]`` whatever the input layout: ``batch_first``
never applies to states. Failures name the slice, and the slice the candidate put there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from rnnspec.cases import Case, layout_case
from rnnspec.checks import Record
from rnnspec.checks.assertions import check_shape
from rnnspec.compare import compare, to_numpy, within
from rnnspec.config import canonical_name
from rnnspec.diagnosis import diagnosed
from rnnspec.harness import Inputs, build, make_inputs, require, run_quietly
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj
from rnnspec.tolerance import Tolerance, for_case

SIZES: dict[str, Any] = dict(steps=5, batch=3, lengths=(3, 5, 1), input_size=10, hidden_size=9)
PROJ = 7
STACKS = ((2, False), (1, True), (2, True))
LAYOUTS = ("time-major", "batch_first", "packed", "unbatched")
DIRECTIONS = ("forward", "reverse")


def _case(cell: str, layers: int, bidirectional: bool, layout: str, proj: int = 0) -> Case:
    return layout_case(cell, layers, bidirectional, layout, proj_size=proj, **SIZES)


def cases(cells: Iterable[str]) -> list[Case]:
    """Every cell over stacks x layouts, three bidirectional layers, and projections."""
    found: list[Case] = []
    for cell in cells:
        found.extend(_case(cell, *stack, layout) for stack in STACKS for layout in LAYOUTS)
        found.append(_case(cell, 3, True, "time-major"))
        if supports_proj(cell):
            found.extend(_case(cell, 2, True, layout, PROJ) for layout in LAYOUTS)
            found.append(_case(cell, 3, True, "time-major", PROJ))
    return found


def _reverse_within(x: np.ndarray, lengths: tuple[int, ...]) -> np.ndarray:
    """Each sequence ``x[:, b]`` reversed within its length; padding stays in place."""
    reversed_x = x.copy()
    for b, length in enumerate(lengths):
        reversed_x[:length, b] = x[length - 1 :: -1, b]
    return reversed_x


def rebuild_stack(
    case: Case, inputs: Inputs
) -> tuple[np.ndarray, dict[tuple[int, int], tuple[np.ndarray, ...]]]:
    """Time-major output (T, B, D*out) and each (layer, direction)'s final states (B, size)."""
    from reference.gold import forward

    config = case.config
    cell = config.resolve()
    x = inputs.x
    if case.batch is None:
        x = x[:, None]
    elif config.batch_first:
        x = x.swapaxes(0, 1)
    lengths = inputs.lengths or (case.steps,) * x.shape[1]
    states = None
    if inputs.hx is not None:
        states = [s[:, None] if case.batch is None else s for s in inputs.hx]
    active = cell.active_parameters(bias=config.bias, proj=config.proj_size > 0)
    finals = {}
    layer_input = x
    for layer in range(config.num_layers):
        single = config.replace(
            num_layers=1,
            bidirectional=False,
            batch_first=False,
            input_size=layer_input.shape[-1],
        )
        outputs = []
        for direction in range(config.num_directions):
            weights = {
                canonical_name(p.name, 0, 0): inputs.weights[
                    canonical_name(p.name, layer, direction)
                ]
                for p in active
            }
            index = layer * config.num_directions + direction
            hx = None if states is None else tuple(s[index : index + 1] for s in states)
            source = layer_input if direction == 0 else _reverse_within(layer_input, lengths)
            output, final = forward(single, weights, source, hx, inputs.lengths)
            final = final if isinstance(final, tuple) else (final,)
            finals[layer, direction] = tuple(state[0] for state in final)
            outputs.append(output if direction == 0 else _reverse_within(output, lengths))
        layer_input = np.concatenate(outputs, axis=-1)
    return layer_input, finals


def _slice_name(layer: int, direction: int) -> str:
    return f"layer={layer}, direction={DIRECTIONS[direction]}"


def _check_state_slices(
    name: str,
    got: Any,
    expected: dict[tuple[int, int], np.ndarray],
    case: Case,
    tol: Tolerance,
    record: Record,
) -> None:
    """``got[l * D + d]`` equals the rebuilt (l, d) state; else name what it holds instead."""
    __tracebackhide__ = True
    label = case.label()
    wanted = {key: _unbatch(value, case) for key, value in expected.items()}
    check_shape(got, (len(wanted), *next(iter(wanted.values())).shape), name, label)
    got_array = to_numpy(got)
    for (layer, direction), value in wanted.items():
        held = got_array[layer * case.config.num_directions + direction]
        what = f"{name}[{_slice_name(layer, direction)}]"
        if np.all(np.isfinite(held)) and not within(held, value, tol):
            holds = [_slice_name(*key) for key, other in wanted.items() if within(held, other, tol)]
            if holds:
                what += f" (holds {holds[0]})"
        record(compare(held, value, what, tol, label))


def _check_outputs(
    got: Any,
    expected: np.ndarray,
    last_states: list[np.ndarray],
    case: Case,
    tol: Tolerance,
    record: Record,
) -> None:
    """Each direction's final state sits at its last step of the output, then whole halves."""
    __tracebackhide__ = True
    config, label = case.config, case.label()
    got_output, expected_output = to_numpy(got), _layout(expected, case)
    check_shape(got_output, expected_output.shape, "output", label)
    if case.batch is None:  # batch_first does not apply to unbatched input
        output = got_output[:, None]
    else:
        output = got_output.swapaxes(0, 1) if config.batch_first else got_output
    lengths = np.asarray(case.lengths or (case.steps,) * output.shape[1])
    ends = (lengths - 1, np.zeros_like(lengths))
    halves = [
        slice(direction * config.output_size, (direction + 1) * config.output_size)
        for direction in range(config.num_directions)
    ]
    for direction, state in enumerate(last_states):
        at_end = output[ends[direction], np.arange(output.shape[1]), halves[direction]]
        step = "t=length-1" if direction == 0 else "t=0"
        final = _slice_name(config.num_layers - 1, direction)
        what = f"output[{step}, {DIRECTIONS[direction]} half] as h_n[{final}]"
        record(compare(_unbatch(at_end, case), _unbatch(state, case), what, tol, label))
    for direction, half in enumerate(halves):
        what = f"output[..., {DIRECTIONS[direction]} half]"
        record(compare(got_output[..., half], expected_output[..., half], what, tol, label))


def _unbatch(value: np.ndarray, case: Case) -> np.ndarray:
    return value[0] if case.batch is None else value


def _layout(output: np.ndarray, case: Case) -> np.ndarray:
    """A time-major batched output in the case's layout."""
    if case.batch is None:
        return output[:, 0]
    return output.swapaxes(0, 1) if case.config.batch_first else output


@diagnosed
def check_layout(impl: Implementation, case: Case, record: Record) -> None:
    """h_n[l * D + d] (and c_n) hold layer l, direction d; outputs align with final states."""
    __tracebackhide__ = True
    require(impl, case)
    inputs = make_inputs(case, impl)
    output, finals = rebuild_stack(case, inputs)
    got = run_quietly(build(impl, case, inputs))
    tol = for_case(case)
    for kind, (name, state) in enumerate(zip(case.state_names(), got.states, strict=True)):
        expected = {key: values[kind] for key, values in finals.items()}
        _check_state_slices(name, state, expected, case, tol, record)
    last_layer = case.config.num_layers - 1
    last_states = [finals[last_layer, d][0] for d in range(case.config.num_directions)]
    _check_outputs(got.output, output, last_states, case, tol, record)
