"""Localisation: where a candidate first leaves the gold.

Compare the candidate's output per step and per direction half, and its final states per
layer and direction slice, with the float64 gold; where the layer's input is known (one
layer), re-run every step of the gold from the candidate's own previous output to find the
first step whose one-step update is wrong.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from reference.compose import NumpyOps, reverse_index
from rnnspec.cases import Case
from rnnspec.diagnosis.predict import (
    Canonical,
    Model,
    Observed,
    excess,
    layer_function,
    layer_weights,
)
from rnnspec.spec import composition
from rnnspec.tolerance import Tolerance

DIRECTIONS = ("forward", "reverse")


def _reverse_index(lengths: np.ndarray | None, steps: int, batch: int) -> np.ndarray:
    """:func:`reference.compose.reverse_index`; no lengths: every sequence is full."""
    return reverse_index(np.full(batch, steps) if lengths is None else lengths, steps)


@dataclass(frozen=True)
class Divergence:
    """Where the candidate first leaves the gold."""

    layer: int
    direction: int
    state: str
    step: int | None  # input position of the first diverging step, when the output shows it
    seen_in: str  # "output", or "h_n"/"c_n" when only the final state shows it
    output_step: int | None = None  # first diverging step of the last layer's output
    wrong_updates: tuple[int, ...] | None = None  # one-step updates that are wrong (positions)
    updates: int = 0

    def __str__(self) -> str:
        parts = [f"t={self.step}"] if self.step is not None else []
        parts += [f"layer {self.layer}", DIRECTIONS[self.direction], self.state]
        text = "diverges at " + ", ".join(parts)
        if self.seen_in != "output":
            text += f" (seen in {self.seen_in}; " + (
                f"the output first differs at t={self.output_step})"
                if self.output_step is not None
                else "the output matches)"
            )
        if self.wrong_updates is not None:
            wrong = self.wrong_updates
            text += "; one-step updates from its own state: " + (
                f"{len(wrong)} of {self.updates} wrong, first at t={wrong[0]}"
                if wrong
                else "all right"
            )
        return text


def _first_step(bad: np.ndarray, lengths: np.ndarray | None, direction: int) -> int | None:
    """The input position of the first bad (T, B) element in the direction's step order."""
    if not bad.any():
        return None
    steps, batch = bad.shape
    if direction == 0:
        order = np.broadcast_to(np.arange(steps)[:, None], (steps, batch))
    else:
        order = np.argsort(_reverse_index(lengths, steps, batch), axis=0)
    rank = np.where(bad, order, steps + 1)
    return int(np.unravel_index(np.argmin(rank), rank.shape)[0])


def localise(
    case: Case,
    got: Observed,
    gold: Observed,
    inputs: Canonical,
    tol: Tolerance,
) -> Divergence | None:
    """The first diverging layer, direction, state and step (None when nothing diverges)."""
    config, cell = case.config, case.config.resolve()
    layers, directions, size = config.num_layers, config.num_directions, config.output_size
    index_of = composition().index
    lengths = inputs[3]
    bad_states: dict[tuple[int, int], list[str]] = {}
    for state, g, e in zip(cell.states, got.states, gold.states, strict=True):
        ratio, _ = excess(e, g, tol)
        for layer, direction in itertools.product(range(layers), range(directions)):
            index = index_of(layer, direction, directions)
            if ratio is None or ratio[index].max(initial=0) > 1:
                bad_states.setdefault((layer, direction), []).append(state.name)
    ratio, _ = excess(gold.output, got.output, tol)
    output_steps: dict[int, int] = {}
    if ratio is not None:
        for direction in range(directions):
            half = ratio[..., direction * size : (direction + 1) * size].max(axis=-1, initial=0)
            step = _first_step(half > 1, lengths, direction)
            if step is not None:
                output_steps[direction] = step
    top = layers - 1
    for layer, direction in itertools.product(range(layers), range(directions)):
        in_output = layer == top and direction in output_steps
        states = bad_states.get((layer, direction), [])
        if not in_output and not states:
            continue
        if in_output:
            found = Divergence(layer, direction, cell.output, output_steps[direction], "output")
            if layers == 1:
                found = one_step(found, case, got, inputs, tol)
            return found
        return Divergence(
            layer,
            direction,
            states[0],
            None,
            f"{states[0]}_n",
            output_step=min(output_steps.values()) if output_steps else None,
        )
    return None


def one_step(
    found: Divergence,
    case: Case,
    got: Observed,
    inputs: Canonical,
    tol: Tolerance,
) -> Divergence:
    """Re-run each gold step of a first-layer direction from the candidate's own output."""
    x, states, weights, lengths = inputs
    config, cell, direction = case.config, case.config.resolve(), found.direction
    model = Model(cell)
    step_function = layer_function(cell)
    w = layer_weights(model, config, weights, 0, direction)
    size = config.output_size
    own = got.output[..., direction * size : (direction + 1) * size]
    if direction == 1:
        x, own = NumpyOps.reverse(x, lengths), NumpyOps.reverse(own, lengths)
    masks = None if lengths is None else NumpyOps.masks(lengths, x.shape[0])
    index = composition().index(0, direction, config.num_directions)
    state = tuple(s[index] for s in states)
    steps, batch = own.shape[0], own.shape[1]
    wrong = np.zeros((steps, batch), dtype=bool)
    for k in range(steps):
        keep = None if masks is None else masks[k : k + 1]
        output, new = step_function(x[k : k + 1], state, **w, masks=keep)
        ratio, _ = excess(output[0], own[k], tol)
        wrong[k] = ratio.max(axis=-1) > 1 if ratio is not None else True
        forced = own[k] if keep is None else np.where(keep[0], own[k], new[0])
        state = (forced, *new[1:])
    if masks is not None:
        wrong &= masks[..., 0]
    position = _reverse_index(lengths, steps, batch) if direction else np.indices(wrong.shape)[0]
    positions = [int(position[k, row.argmax()]) for k, row in enumerate(wrong) if row.any()]
    return replace(found, wrong_updates=tuple(positions), updates=steps)
