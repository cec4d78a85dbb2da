"""Prediction: what a network computes under a hypothesis, on a failing case's own inputs.

A :class:`Model` is a cell (possibly with rewritten equations), a transform of the canonical
weights and the options of :func:`reference.compose.forward_network` for wrong compositions,
plus the few bugs that sit around the network loop (initial and final states, packing,
projection, a read-out). :func:`predict` runs it in float64 NumPy through ``reference.compose``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from reference import compose
from rnnspec import codegen
from rnnspec.cases import Case
from rnnspec.compare import allowed, to_numpy
from rnnspec.config import RNNConfig, canonical_name
from rnnspec.harness import Inputs, Outputs
from rnnspec.spec import Cell, Spec, all_specs, composition
from rnnspec.tolerance import Tolerance

WeightTransform = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
READ_OUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda value: np.maximum(value, 0.0),
}
INITIAL_MODES = ("given", "ignored", "direction_major", "first_layer_only")
Canonical = tuple[np.ndarray, list[np.ndarray], Mapping[str, np.ndarray], np.ndarray | None]


@dataclass(frozen=True)
class Model:
    """How a hypothesis says the candidate computes. The defaults are the specs' network."""

    cell: Cell
    weights: WeightTransform | None = None
    reverse: str = "aligned"  # compose.REVERSE_MODES
    feed: str = "in_order"  # compose.FEEDS
    direction_major: tuple[str, ...] = ()  # final states stacked direction * L + layer
    states_swapped: bool = False  # the final states returned in reverse order: (c_n, h_n)
    initial: str = "given"  # INITIAL_MODES
    final_from_last_step: bool = False  # h_n = the last layer's output at t = T - 1
    lengths_ignored: bool = False  # packed input run as if every step were data
    proj_ignored: bool = False  # run as proj_size=0, canonical weights zero-padded to fit
    read_out: str | None = None  # READ_OUTS function applied to the output only


@dataclass(frozen=True)
class Observed:
    """Output (T, B, D * size) and stacked final states (L * D, B, size), time-major, float64."""

    output: np.ndarray
    states: tuple[np.ndarray, ...]

    def arrays(self) -> list[np.ndarray]:
        return [self.output, *self.states]


@cache
def layer_function(cell: Cell) -> Callable[..., Any]:
    """The NumPy layer function of a shipped cell, or one generated for a rewritten cell."""
    from reference.cells import layer_function as shipped_function

    shipped = all_specs().get(cell.kind)
    if shipped is not None and shipped.cells.get(cell.variant) == cell:
        return shipped_function(cell, "numpy")
    spec = Spec(cell.kind, cell.path, cell.digest, cell.variant, {cell.variant: cell})
    module = codegen.load_module(spec, "numpy")
    return getattr(module, cell.function_name)


def layer_weights(
    model: Model, config: RNNConfig, weights: Mapping[str, np.ndarray], layer: int, direction: int
) -> dict[str, np.ndarray]:
    """The model's weights for one layer and direction; absent biases are zeros."""
    found = {}
    for param in model.cell.active_parameters(bias=True, proj=config.proj_size > 0):
        name = canonical_name(param.name, layer, direction)
        shape = param.shape(config.sizes(layer))
        found[param.name] = _padded(weights[name], shape) if name in weights else np.zeros(shape)
    return model.weights(found) if model.weights is not None else found


def _padded(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``array`` in the leading corner of zeros of ``shape`` (a copy)."""
    result = np.zeros(shape)
    result[tuple(slice(0, n) for n in array.shape)] = array
    return result


def _initial_states(model: Model, config: RNNConfig, states: Sequence[np.ndarray]) -> list:
    if model.initial == "ignored":
        return [np.zeros_like(state) for state in states]
    if model.initial == "first_layer_only":  # the layers above start from zeros
        first = [
            composition().index(0, d, config.num_directions) for d in range(config.num_directions)
        ]
        kept = np.isin(np.arange(config.num_layers * config.num_directions), first)
        return [np.where(kept[:, None, None], state, 0.0) for state in states]
    if model.initial == "direction_major":
        layers, directions = config.num_layers, config.num_directions
        index_of = composition().index
        order = sorted(
            range(layers * directions),
            key=lambda given: index_of(given % layers, given // layers, directions),
        )
        return [state[order] for state in states]
    return list(states)


def predict(
    model: Model,
    config: RNNConfig,
    x: np.ndarray,
    states: Sequence[np.ndarray],
    weights: Mapping[str, np.ndarray],
    lengths: np.ndarray | None,
) -> Observed:
    """Run ``model`` on time-major batched inputs (see :func:`canonical_inputs`)."""
    if model.proj_ignored:
        config = config.replace(proj_size=0)
        shapes = config.state_shapes(model.cell, x.shape[1])
        states = [_padded(state, shape) for state, shape in zip(states, shapes, strict=True)]
    run_lengths = None if model.lengths_ignored else lengths
    output, finals = compose.forward_network(
        layer_function(model.cell),
        compose.NumpyOps(),
        x,
        _initial_states(model, config, states),
        lambda layer, direction: layer_weights(model, config, weights, layer, direction),
        config.num_layers,
        config.num_directions,
        lengths=run_lengths,
        reverse=model.reverse,
        feed=model.feed,
    )
    if lengths is not None:  # a packed output is zero past each length, whatever ran there
        output = np.where(compose.NumpyOps.masks(lengths, x.shape[0]), output, 0.0)
    if model.read_out is not None:
        output = READ_OUTS[model.read_out](output)
    finals = tuple(np.array(state) for state in finals)
    if model.final_from_last_step:
        _final_from_last_step(config, output, finals[0])
    names = [state.name for state in model.cell.states]
    stacked = tuple(
        _direction_major(config, state) if name in model.direction_major else state
        for name, state in zip(names, finals, strict=True)
    )
    return Observed(output, stacked[::-1] if model.states_swapped else stacked)


def _final_from_last_step(config: RNNConfig, output: np.ndarray, h_n: np.ndarray) -> None:
    """The last layer's h_n slices overwritten with the output at the last (padded) step."""
    size, top = config.output_size, config.num_layers - 1
    for direction in range(config.num_directions):
        index = composition().index(top, direction, config.num_directions)
        h_n[index] = output[-1, :, direction * size : (direction + 1) * size]


def _direction_major(config: RNNConfig, stacked: np.ndarray) -> np.ndarray:
    layers, directions = config.num_layers, config.num_directions
    index_of = composition().index
    return stacked[
        [index_of(layer, d, directions) for d in range(directions) for layer in range(layers)]
    ]


# -- reading the case's inputs and the candidate's outputs --------------------------------
def canonical_inputs(case: Case, inputs: Inputs) -> Canonical:
    """x (T, B, I), states (L * D, B, size), weights and lengths, as :func:`predict` takes."""
    config, cell = case.config, case.config.resolve()
    batch = 1 if case.unbatched else case.batch
    x = inputs.x[:, None] if case.unbatched else inputs.x
    if config.batch_first and not case.unbatched:
        x = x.swapaxes(0, 1)
    if inputs.hx is None:
        states = [np.zeros(shape) for shape in config.state_shapes(cell, batch)]
    else:
        states = [s[:, None] if case.unbatched else s for s in inputs.hx]
    lengths = None if inputs.lengths is None else np.asarray(inputs.lengths)
    return x, states, inputs.weights, lengths


def time_major(case: Case, output: np.ndarray, states: Sequence[np.ndarray]) -> Observed:
    """The case's layout (batch_first, unbatched) to time-major batched."""
    if case.unbatched:
        return Observed(output[:, None], tuple(state[:, None] for state in states))
    if case.config.batch_first:
        output = output.swapaxes(0, 1)
    return Observed(output, tuple(states))


def observed(case: Case, got: Outputs) -> Observed | str:
    """The candidate's outputs in the canonical layout, or why they cannot be read so."""
    output, states = to_numpy(got.output), [to_numpy(state) for state in got.states]
    rank = 2 if case.unbatched else 3
    wrong = [
        _rank_problem(name, array.shape, expected)
        for (name, expected), array in zip(
            case.result_shapes().items(), [output, *states], strict=True
        )
        if array.ndim != rank
    ]
    return wrong[0] if wrong else time_major(case, output, states)


def _rank_problem(name: str, got: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """Why ``got`` is not ``expected``'s rank; names ``.squeeze()`` when it explains it."""
    problem = f"{name} has {len(got)} dimensions, expected {len(expected)}"
    if tuple(got) == tuple(size for size in expected if size != 1):
        problem += (
            f": {tuple(got)} is {expected} with its size-one dimensions dropped, as "
            "`.squeeze()` without a dimension does; squeeze only the dimension you mean "
            "(`.squeeze(0)`), or none"
        )
    return problem


# -- how far a prediction is from what the candidate returned ------------------------------
def excess(
    predicted: np.ndarray, got: np.ndarray, tol: Tolerance
) -> tuple[np.ndarray | None, float]:
    """Per element |got - predicted| over the allowed error (None: shapes differ), and the
    worst absolute error."""
    if predicted.shape != got.shape:
        return None, float("inf")
    difference = np.abs(got - predicted)
    ratio = difference / allowed(predicted, tol)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    finite = np.isfinite(difference).all()
    return ratio, float(difference.max(initial=0.0)) if finite else float("inf")


def distance(predicted: Observed, got: Observed, tol: Tolerance) -> tuple[float, float]:
    """(worst error over its allowance, worst absolute error) across output and states."""
    worst_ratio, worst_abs = 0.0, 0.0
    for p, g in zip(predicted.arrays(), got.arrays(), strict=True):
        ratio, absolute = excess(p, g, tol)
        if ratio is None:
            return float("inf"), float("inf")
        if ratio.size:
            worst_ratio = max(worst_ratio, float(ratio.max()))
            worst_abs = max(worst_abs, absolute)
    return worst_ratio, worst_abs
