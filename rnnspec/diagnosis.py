"""Diagnose a candidate that fails forward parity: where it diverges, and what it got wrong.

Localise: compare the candidate's output per step and per direction half, and its final
states per layer and direction slice, with the float64 gold; where the layer's input is
known (one layer), re-run every step of the gold from the candidate's own previous output
to find the first step whose one-step update is wrong.

Explain: the hypothesis library (``specs/hypotheses.toml``) states known bug classes as
data: transforms of the cell's equations, of the canonical weights, or of the layout.
Each hypothesis predicts the outputs on the failing case's own inputs; the one that
matches the candidate within the tolerance policy is named, and when none does the
verdict says so instead of guessing.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from reference.compose import NumpyOps, reverse_index
from rnnspec import codegen, notation
from rnnspec.cases import Case
from rnnspec.compare import CheckFailure, allowed, to_numpy
from rnnspec.config import RNNConfig, canonical_name
from rnnspec.errors import ConfigError, Location, SpecSemanticError
from rnnspec.harness import Candidate, Inputs, Outputs, make_inputs, no_grad, require
from rnnspec.notation import Call, Expr, Name
from rnnspec.protocol import Implementation
from rnnspec.spec import SPECS_DIR, Cell, Equation, Spec, all_specs, composition
from rnnspec.tolerance import Tolerance, tolerance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HYPOTHESES_PATH = SPECS_DIR / "hypotheses.toml"
FEATURES = ("bias", "bidirectional", "stacked", "packed", "proj")
DIRECTIONS = ("forward", "reverse")
NO_MATCH = "no hypothesis in the library matches"
WeightTransform = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


# -- the library ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Hypothesis:
    """One ``[[hypothesis]]`` entry of the library, before it is applied to a cell."""

    name: str
    kind: str
    description: str
    cells: frozenset[str] | None
    requires: frozenset[str]
    options: Mapping[str, Any] = field(compare=False, hash=False)

    def applies(self, cell: Cell, case: Case) -> bool:
        config = case.config
        present = {
            "bias": config.bias,
            "bidirectional": config.bidirectional,
            "stacked": config.bidirectional and config.num_layers > 1,
            "packed": case.packed,
            "proj": config.proj_size > 0,
        }
        return (self.cells is None or cell.name in self.cells) and all(
            present[feature] for feature in self.requires
        )


@dataclass(frozen=True)
class Model:
    """How a hypothesis says the candidate computes: a cell, weights and a composition."""

    cell: Cell
    weights: WeightTransform | None = None
    reverse: str = "aligned"  # over_padding | not_realigned
    direction_major: tuple[str, ...] = ()  # states stacked direction * L + layer
    proj_ignored: bool = False  # run as proj_size=0, canonical weights zero-padded to fit


@dataclass(frozen=True)
class Explanation:
    """A hypothesis applied to the failing case's cell: a name and what it predicts."""

    name: str
    description: str
    model: Model


def load_library(path: Any = HYPOTHESES_PATH) -> tuple[Hypothesis, ...]:
    """Read and check a hypothesis file (every kind known, every feature known)."""
    with open(path, "rb") as file:
        data = tomllib.load(file)
    found = []
    for number, entry in enumerate(data.get("hypothesis", []), 1):
        where = f"{path}: hypothesis {number} ({entry.get('name', '?')})"
        options = dict(entry)
        name, kind = options.pop("name", None), options.pop("kind", None)
        if not isinstance(name, str) or kind not in KINDS:
            raise SpecSemanticError(f"{where}: needs a name and a kind in {sorted(KINDS)}")
        requires = frozenset(options.pop("requires", ()))
        if not requires <= set(FEATURES):
            raise SpecSemanticError(f"{where}: requires must be among {FEATURES}")
        cells = options.pop("cells", None)
        found.append(
            Hypothesis(
                name,
                kind,
                options.pop("description", name),
                None if cells is None else frozenset(cells),
                requires,
                options,
            )
        )
    return tuple(found)


@cache
def library() -> tuple[Hypothesis, ...]:
    return load_library()


def explanations(case: Case) -> list[Explanation]:
    """Every hypothesis of the library that can show on ``case``, applied to its cell."""
    cell = case.config.resolve()
    found = []
    for hypothesis in library():
        if hypothesis.applies(cell, case):
            found.extend(KINDS[hypothesis.kind](hypothesis, cell, case.config))
    return found


# -- kinds: each turns a hypothesis into explanations for one cell ------------------------
def _describe(hypothesis: Hypothesis, cell: Cell, **values: str) -> str:
    return hypothesis.description.format(title=cell.title, **values)


def _blocks(cell: Cell, names: Iterable[str]) -> list[str]:
    """The parameters among ``names`` that are stacked by the cell's gates."""
    return [p.name for p in cell.parameters if p.name in names and p.blocks == cell.gates]


def _permute_blocks(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    params = _blocks(cell, hypothesis.options["parameters"])
    found = []
    for order in itertools.permutations(cell.gates):
        if order == cell.gates:
            continue
        source = [order.index(gate) for gate in cell.gates]

        def transform(w: dict[str, np.ndarray], source: list[int] = source) -> dict:
            for name in params:
                blocks = np.split(w[name], len(source))
                w[name] = np.concatenate([blocks[index] for index in source])
            return w

        found.append(
            Explanation(
                hypothesis.name.format(order=",".join(order)),
                _describe(hypothesis, cell, order=", ".join(order)),
                Model(cell, transform),
            )
        )
    return found


def _zero_parameter(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    name = hypothesis.options["parameter"]

    def transform(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w[name] = np.zeros_like(w[name])
        return w

    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(cell, transform))]


def _add_to_block(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    name, block = hypothesis.options["parameter"], hypothesis.options["block"]
    param = cell.parameter(name)
    index, value = param.blocks.index(block), float(hypothesis.options["value"])

    def transform(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blocks = np.split(w[name].copy(), len(param.blocks))
        blocks[index] += value
        w[name] = np.concatenate(blocks)
        return w

    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(cell, transform))]


def _transpose_blocks(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    name = hypothesis.options["parameter"]
    param = cell.parameter(name)
    rows, columns = param.block_shape
    sizes = [config.sizes(layer) for layer in range(config.num_layers)]
    if any(size[rows] != size[columns] for size in sizes):
        return []  # non-square blocks: transposing them fails loudly, not silently

    def transform(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blocks = np.split(w[name], max(len(param.blocks), 1))
        w[name] = np.concatenate([block.T for block in blocks])
        return w

    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(cell, transform))]


def _variant(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    other = all_specs()[cell.kind].cell(hypothesis.options["variant"])
    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(other))]


def _equations(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    replaced = {target: _parse(text) for target, text in hypothesis.options["equations"].items()}
    changed = _with_equations(cell, replaced, hypothesis.name)
    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(changed))]


def _rewrite_function(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    function, replacement = hypothesis.options["function"], hypothesis.options["with"]
    calling = [
        eq.target
        for eq in cell.equations
        if any(isinstance(node, Call) and node.func == function for node in eq.expr.walk())
    ]
    choices = [tuple(calling)] if calling else []
    if hypothesis.options.get("each") and len(calling) > 1:
        choices += [(target,) for target in calling]
    found = []
    for targets in choices:
        rewritten = {
            eq.target: notation.transform(eq.expr, _call_rewriter(function, replacement))
            for eq in cell.equations
            if eq.target in targets
        }
        changed = _with_equations(cell, rewritten, f"{hypothesis.name}_{'_'.join(targets)}")
        description = _describe(hypothesis, cell, targets=", ".join(targets))
        found.append(Explanation(hypothesis.name, description, Model(changed)))
    return found


def _state_layout(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    if hypothesis.options["order"] != "direction_major":
        raise SpecSemanticError(f"{hypothesis.name}: unknown state order")
    names = {state.name for state in cell.states}
    states = tuple(name for name in hypothesis.options["states"] if name in names)
    return [
        Explanation(
            hypothesis.name, _describe(hypothesis, cell), Model(cell, None, "aligned", states)
        )
    ]


def _reverse(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    mode = hypothesis.options["mode"]
    if mode not in ("over_padding", "not_realigned"):
        raise SpecSemanticError(f"{hypothesis.name}: unknown reverse mode {mode!r}")
    return [Explanation(hypothesis.name, _describe(hypothesis, cell), Model(cell, reverse=mode))]


def _projection(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    if hypothesis.options["mode"] != "skipped":
        raise SpecSemanticError(f"{hypothesis.name}: unknown projection mode")
    model = Model(cell, proj_ignored=True)
    return [Explanation(hypothesis.name, _describe(hypothesis, cell), model)]


KINDS: dict[str, Callable[[Hypothesis, Cell, RNNConfig], list[Explanation]]] = {
    "permute_blocks": _permute_blocks,
    "zero_parameter": _zero_parameter,
    "add_to_block": _add_to_block,
    "transpose_blocks": _transpose_blocks,
    "variant": _variant,
    "equations": _equations,
    "rewrite_function": _rewrite_function,
    "state_layout": _state_layout,
    "reverse": _reverse,
    "projection": _projection,
}


# -- rewriting the cell's expression trees -------------------------------------------------
def _parse(text: str) -> Expr:
    return notation.parse(text, Location(HYPOTHESES_PATH, 1, 1)).expr


def _call_rewriter(function: str, replacement: str) -> Callable[[Expr], Expr]:
    """``function(a)`` becomes ``a`` (identity), ``replacement(a)``, or the template of ARG."""
    template = None if replacement in notation.FUNCTIONS else _parse(replacement)

    def change(node: Expr) -> Expr:
        if not (isinstance(node, Call) and node.func == function):
            return node
        argument = node.args[0]
        if replacement == "identity":
            return argument
        if template is None:
            return Call(replacement, (argument,))
        return notation.transform(template, lambda leaf: argument if leaf == Name("ARG") else leaf)

    return change


def _with_equations(cell: Cell, replaced: Mapping[str, Expr], label: str) -> Cell:
    equations = tuple(
        Equation(eq.target, replaced[eq.target], f"(diagnosis: {label})", eq.location, {})
        if eq.target in replaced
        else eq
        for eq in cell.equations
    )
    variant = re.sub(r"\W", "_", f"{cell.variant}_{label}")
    return replace(cell, variant=variant, is_base=False, equations=equations)


@cache
def _layer_function(cell: Cell) -> Callable[..., Any]:
    from reference.cells import layer_function

    shipped = all_specs().get(cell.kind)
    if shipped is not None and shipped.cells.get(cell.variant) == cell:
        return layer_function(cell, "numpy")
    spec = Spec(cell.kind, cell.path, cell.digest, cell.variant, {cell.variant: cell})
    module = codegen.load_module(spec, "numpy")
    return getattr(module, cell.function_name)


# -- running a model on the case's inputs --------------------------------------------------
@dataclass(frozen=True)
class Observed:
    """Output (T, B, D * size) and stacked final states (L * D, B, size), time-major, float64."""

    output: np.ndarray
    states: tuple[np.ndarray, ...]

    def arrays(self) -> list[np.ndarray]:
        return [self.output, *self.states]


def _reverse_index(lengths: np.ndarray | None, steps: int, batch: int) -> np.ndarray:
    """:func:`reference.compose.reverse_index`; no lengths: every sequence is full."""
    return reverse_index(np.full(batch, steps) if lengths is None else lengths, steps)


def _layer_weights(
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


def predict(
    model: Model,
    config: RNNConfig,
    x: np.ndarray,
    states: Sequence[np.ndarray],
    weights: Mapping[str, np.ndarray],
    lengths: np.ndarray | None,
) -> Observed:
    """Run ``model`` on time-major batched inputs with the composition of the specs."""
    layer_function = _layer_function(model.cell)
    if model.proj_ignored:
        config = config.replace(proj_size=0)
        shapes = config.state_shapes(model.cell, x.shape[1])
        states = [_padded(state, shape) for state, shape in zip(states, shapes, strict=True)]
    layers, directions = config.num_layers, config.num_directions
    masks = None if lengths is None else NumpyOps.masks(lengths, x.shape[0])
    index_of = composition().index
    finals: list[list[Any]] = [[None] * (layers * directions) for _ in states]
    layer_input = x
    for layer in range(layers):
        outputs = []
        for direction in range(directions):
            index = index_of(layer, direction, directions)
            initial = tuple(state[index] for state in states)
            w = _layer_weights(model, config, weights, layer, direction)
            if direction == 0:
                output, final = layer_function(layer_input, initial, **w, masks=masks)
            elif model.reverse == "over_padding":
                output, final = layer_function(layer_input[::-1], initial, **w, masks=None)
                output = output[::-1]
            else:
                source = NumpyOps.reverse(layer_input, lengths)
                output, final = layer_function(source, initial, **w, masks=masks)
                output = NumpyOps.reverse(output, lengths)
                if model.reverse == "not_realigned":
                    output = output[::-1]
            outputs.append(output)
            for kind, value in enumerate(final):
                finals[kind][index] = value
        layer_input = np.concatenate(outputs, axis=-1)
    if masks is not None:
        layer_input = np.where(masks, layer_input, 0.0)
    names = [state.name for state in model.cell.states]
    stacked = []
    for name, values in zip(names, finals, strict=True):
        if name in model.direction_major:
            values = [
                values[index_of(layer, d, directions)]
                for d in range(directions)
                for layer in range(layers)
            ]
        stacked.append(np.stack(values))
    return Observed(layer_input, tuple(stacked))


def _time_major(case: Case, output: np.ndarray, states: Sequence[np.ndarray]) -> Observed:
    """The case's layout (batch_first, unbatched) to time-major batched."""
    if case.unbatched:
        return Observed(output[:, None], tuple(state[:, None] for state in states))
    if case.config.batch_first:
        output = output.swapaxes(0, 1)
    return Observed(output, tuple(states))


def _observed(case: Case, got: Outputs) -> Observed | str:
    """The candidate's outputs in the canonical layout, or why they cannot be read so."""
    output, states = to_numpy(got.output), [to_numpy(state) for state in got.states]
    rank = 2 if case.unbatched else 3
    names = ["output", *(state.name + "_n" for state in case.config.resolve().states)]
    wrong = [
        f"{name} has {array.ndim} dimensions, expected {rank}"
        for name, array in zip(names, [output, *states], strict=True)
        if array.ndim != rank
    ]
    return wrong[0] if wrong else _time_major(case, output, states)


# -- matching ------------------------------------------------------------------------------
def _excess(
    predicted: np.ndarray, got: np.ndarray, tol: Tolerance
) -> tuple[np.ndarray | None, float]:
    """Per element |got - predicted| over the allowed error (None: shapes differ)."""
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
        ratio, absolute = _excess(p, g, tol)
        if ratio is None:
            return float("inf"), float("inf")
        if ratio.size:
            worst_ratio = max(worst_ratio, float(ratio.max()))
            worst_abs = max(worst_abs, absolute)
    return worst_ratio, worst_abs


# -- localisation --------------------------------------------------------------------------
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
    inputs: tuple[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray], np.ndarray | None],
    tol: Tolerance,
) -> Divergence | None:
    """The first diverging layer, direction, state and step (None when nothing diverges)."""
    config, cell = case.config, case.config.resolve()
    layers, directions, size = config.num_layers, config.num_directions, config.output_size
    index_of = composition().index
    lengths = inputs[3]
    bad_states: dict[tuple[int, int], list[str]] = {}
    for state, g, e in zip(cell.states, got.states, gold.states, strict=True):
        ratio, _ = _excess(e, g, tol)
        for layer, direction in itertools.product(range(layers), range(directions)):
            index = index_of(layer, direction, directions)
            if ratio is None or ratio[index].max(initial=0) > 1:
                bad_states.setdefault((layer, direction), []).append(state.name)
    ratio, _ = _excess(gold.output, got.output, tol)
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
                found = _one_step(found, case, got, inputs, tol)
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


def _one_step(
    found: Divergence,
    case: Case,
    got: Observed,
    inputs: tuple[np.ndarray, Sequence[np.ndarray], Mapping[str, np.ndarray], np.ndarray | None],
    tol: Tolerance,
) -> Divergence:
    """Re-run each gold step of a first-layer direction from the candidate's own output."""
    x, states, weights, lengths = inputs
    config, cell, direction = case.config, case.config.resolve(), found.direction
    model = Model(cell)
    layer_function = _layer_function(cell)
    w = _layer_weights(model, config, weights, 0, direction)
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
        output, new = layer_function(x[k : k + 1], state, **w, masks=keep)
        ratio, _ = _excess(output[0], own[k], tol)
        wrong[k] = ratio.max(axis=-1) > 1 if ratio is not None else True
        forced = own[k] if keep is None else np.where(keep[0], own[k], new[0])
        state = (forced, *new[1:])
    if masks is not None:
        wrong &= masks[..., 0]
    position = _reverse_index(lengths, steps, batch) if direction else np.indices(wrong.shape)[0]
    positions = [int(position[k, row.argmax()]) for k, row in enumerate(wrong) if row.any()]
    return replace(found, wrong_updates=tuple(positions), updates=steps)


# -- the verdict ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """Where a candidate diverges and which hypothesis of the library explains it."""

    config: str
    divergence: Divergence | None
    hypothesis: str | None
    description: str = ""
    error: float | None = None
    also: tuple[str, ...] = ()
    tried: int = 0
    closest: str | None = None
    closest_error: float | None = None
    note: str = ""  # why the outputs could not be localised (shapes, dimensions)

    @property
    def where(self) -> str:
        return self.note or (str(self.divergence) if self.divergence else "no divergence found")

    @property
    def what(self) -> str:
        if self.hypothesis is not None:
            text = f"matches {self.hypothesis} ({self.description}) to {self.error:.1g}"
            if self.also:
                text += f"; also consistent with {', '.join(self.also)}"
            return text
        text = f"{NO_MATCH} ({self.tried} tried"
        if self.closest is not None and self.closest_error is not None:
            text += f"; closest {self.closest}, off by {self.closest_error:.2g}"
        return text + ")"

    def __str__(self) -> str:
        return f"{self.where}; {self.what}"

    def as_dict(self) -> dict[str, Any]:
        divergence = self.divergence
        return {
            "verdict": str(self),
            "hypothesis": self.hypothesis,
            "description": self.description,
            "error": self.error,
            "also": list(self.also),
            "tried": self.tried,
            "closest": self.closest,
            "closest_error": self.closest_error,
            "divergence": None
            if divergence is None
            else {
                "layer": divergence.layer,
                "direction": DIRECTIONS[divergence.direction],
                "state": divergence.state,
                "step": divergence.step,
                "seen_in": divergence.seen_in,
                "wrong_updates": None
                if divergence.wrong_updates is None
                else list(divergence.wrong_updates),
            },
            "note": self.note,
            "config": self.config,
        }


def canonical_inputs(
    case: Case, inputs: Inputs
) -> tuple[np.ndarray, list[np.ndarray], Mapping[str, np.ndarray], np.ndarray | None]:
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


def diagnose(case: Case, inputs: Inputs, got: Outputs) -> Verdict:
    """Localise the candidate's divergence on ``case`` and name the matching hypothesis."""
    with np.errstate(all="ignore"):  # hypotheses and broken candidates may overflow
        return _diagnose(case, inputs, got)


def _diagnose(case: Case, inputs: Inputs, got: Outputs) -> Verdict:
    tol = tolerance(case.dtype, case.steps, case.config.num_layers)
    canonical = canonical_inputs(case, inputs)
    config = case.config

    def run(model: Model) -> Observed:
        return predict(model, config, *canonical)

    gold = run(Model(config.resolve()))
    observed = _observed(case, got)
    if isinstance(observed, str):
        return Verdict(case.label(), None, None, note=observed)
    note = ""
    shapes = [(p.shape, g.shape) for p, g in zip(gold.arrays(), observed.arrays(), strict=True)]
    mismatched = [
        f"{what} has shape {g}, expected {p}"
        for what, (p, g) in zip(
            ["output", *(s.name + "_n" for s in config.resolve().states)], shapes, strict=True
        )
        if p != g
    ]
    divergence = None
    if mismatched:
        note = "; ".join(mismatched)
    else:
        divergence = localise(case, observed, gold, canonical, tol)
    scored = []
    tried = 0
    for explanation in explanations(case):
        predicted = run(explanation.model)
        if distance(predicted, gold, tol)[0] <= 1:
            continue  # indistinguishable from the gold on this case
        tried += 1
        ratio, error = distance(predicted, observed, tol)
        scored.append((ratio, error, explanation))
    scored.sort(key=lambda item: item[0])
    matching = [item for item in scored if item[0] <= 1]
    label = case.label()
    if matching:
        _, error, best = matching[0]
        also = tuple(dict.fromkeys(e.name for _, _, e in matching[1:] if e.name != best.name))
        return Verdict(
            label, divergence, best.name, best.description, error, also, tried, note=note
        )
    closest = next((item for item in scored if np.isfinite(item[1])), None)
    return Verdict(
        label,
        divergence,
        None,
        tried=tried,
        closest=closest[2].name if closest else None,
        closest_error=closest[1] if closest else None,
        note=note,
    )


def annotate(failure: CheckFailure, case: Case, inputs: Inputs, got: Outputs) -> None:
    """Append the diagnosis to a parity failure's message and details (never raises)."""
    try:
        verdict = diagnose(case, inputs, got)
    except Exception as error:  # the diagnosis must not hide the failure it explains
        text = f"diagnosis failed: {type(error).__name__}: {error}"
        failure.details["diagnosis"] = {"verdict": text}
    else:
        text = f"diagnosis: {verdict}"
        failure.details["diagnosis"] = verdict.as_dict()
    failure.args = (f"{failure.args[0]}\n{text}", *failure.args[1:])


# -- running a candidate directly (``rnnspec diagnose``) -----------------------------------
@dataclass(frozen=True)
class Result:
    """One case run by :func:`run`: its outcome, the failure message and the verdict."""

    case: Case
    outcome: str  # passed | failed | raised | skipped
    message: str = ""
    verdict: Verdict | None = None

    def __str__(self) -> str:
        text = f"{self.case.label()}: {self.outcome}"
        if self.message:
            text += f"\n  {self.message.splitlines()[0]}"
        if self.verdict is not None:
            text += f"\n  diagnosis: {self.verdict}"
        return text


def diagnostic_cases(cell: str) -> list[Case]:
    """Small cases that show each hypothesis of the library: plain, packed, stacked, proj."""
    base = RNNConfig(cell=cell, input_size=5, hidden_size=7)
    found = [
        Case(base, steps=6, batch=3),
        Case(base.replace(bidirectional=True), steps=6, batch=3, lengths=(6, 2, 4)),
        Case(base.replace(num_layers=2, bidirectional=True, batch_first=True), steps=6, batch=3),
    ]
    if base.resolve().supports_proj:
        found.append(Case(base.replace(proj_size=3), steps=6, batch=3, given_state=False))
    return found


CASE_KEYS = ("steps", "batch", "dtype", "lengths", "given_state", "seed")
_OPTION_TYPES: dict[str, type] = {
    "cell": str,
    "dtype": str,
    "dropout": float,
    "bidirectional": bool,
    "bias": bool,
    "batch_first": bool,
    "given_state": bool,
}


def case_from_options(cell: str, options: Sequence[str]) -> Case:
    """A case from ``key=value`` options: RNNConfig fields, and steps, batch, dtype, lengths..."""
    config_fields = set(RNNConfig.__dataclass_fields__) - {"cell"}
    config: dict[str, Any] = {"input_size": 5, "hidden_size": 7}
    case: dict[str, Any] = {"batch": 3}
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in config_fields | set(CASE_KEYS):
            known = ", ".join(sorted(config_fields | set(CASE_KEYS)))
            raise ConfigError(f"--config {option!r}: expected KEY=VALUE, KEY one of {known}")
        (config if key in config_fields else case)[key] = _typed(option, key, text.strip())
    case.setdefault("steps", max(case.get("lengths") or (6,)))
    try:
        return Case(RNNConfig(cell=cell, **config), **case)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--config {' '.join(options)}: {error}") from None


def _typed(option: str, key: str, text: str) -> Any:
    """The value of ``key=text`` in the type the field takes, or a ConfigError saying so."""
    expected = _OPTION_TYPES.get(key, int)
    value = _value(text)
    try:
        if key == "lengths":
            return tuple(int(n) for n in text.split(","))
        if expected is float and type(value) in (int, float):
            return float(value)
        if type(value) is not expected:
            raise ValueError
        return value
    except ValueError:
        kind = "comma-separated integers" if key == "lengths" else expected.__name__
        raise ConfigError(f"--config {option!r}: {key} must be {kind}") from None


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(impl: Implementation, case: Case) -> Result:
    """Run ``impl`` on ``case``; when it fails parity, diagnose it."""
    from rnnspec.checks import ignore
    from rnnspec.checks.parity import compare_outputs
    from rnnspec.harness import Unsupported, gold

    try:
        require(impl, case)
    except Unsupported as reason:
        return Result(case, "skipped", str(reason))
    inputs = make_inputs(case)
    try:
        candidate = Candidate(impl, case, inputs)
        with no_grad(candidate):
            got = candidate.run(*candidate.prepare())
    except CheckFailure as failure:
        return Result(case, "raised", str(failure))
    try:
        compare_outputs(got, gold(case, inputs), case, ignore)
    except CheckFailure as failure:
        return Result(case, "failed", str(failure), diagnose(case, inputs, got))
    return Result(case, "passed")


def add_command(commands: Any) -> None:
    """Add ``rnnspec diagnose --impl NAME [--cell CELL] [--config KEY=VALUE ...]``."""
    parser = commands.add_parser(
        "diagnose",
        help="run an implementation on small cases and diagnose each parity failure",
        description="Run an implementation on small diagnostic cases (plain; bidirectional "
        "packed; two layers bidirectional batch_first; with proj_size for LSTM), or on the "
        "one case --config describes, and print for each failure where the candidate first "
        "diverges and which hypothesis of the library matches it. Exits 1 on any failure.",
    )
    parser.add_argument(
        "--impl", required=True, metavar="NAME", help="entry point name or package.module:attr"
    )
    parser.add_argument(
        "--cell",
        metavar="CELL",
        help="cell kind[:variant] (default: every cell and variant the implementation declares)",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="one case instead of the defaults: RNNConfig fields (num_layers=2, "
        "bidirectional=true, ...) and steps, batch, dtype, lengths=6,2,4, given_state, seed",
    )
    parser.set_defaults(run=_command)


def _command(args: Any) -> int:
    from rnnspec import registry

    impl = registry.load(args.impl)
    declared = impl.capabilities
    known = [cell.name for loaded in all_specs().values() for cell in loaded.cells.values()]
    cells = [args.cell] if args.cell else [c for c in known if declared.declares(c)]
    if not cells:
        raise ConfigError(
            f"{impl.name} declares no known cell ({', '.join(sorted(declared.cells))})"
        )
    failed = 0
    for cell in cells:
        cases = [case_from_options(cell, args.config)] if args.config else diagnostic_cases(cell)
        for case in cases:
            result = run(impl, case)
            failed += result.outcome in ("failed", "raised")
            print(result)
    return 1 if failed else 0
