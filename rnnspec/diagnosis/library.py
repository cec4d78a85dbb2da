"""The hypothesis library: known bug classes, as data (``specs/hypotheses.toml``).

Each ``[[hypothesis]]`` is a transform of the canonical cell's equations, of its weights, of
the composition of layers and directions, or a re-run of the candidate with one thing
changed (a probe). :func:`explanations` applies every hypothesis that can show on a case
to the case's cell: each becomes an :class:`Explanation` whose :class:`~.predict.Model`
predicts what a network with that bug computes.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from reference.compose import FEEDS, REVERSE_MODES
from rnnspec import notation
from rnnspec.cases import Case
from rnnspec.config import RNNConfig
from rnnspec.diagnosis.predict import INITIAL_MODES, Model
from rnnspec.errors import Location, SpecSemanticError
from rnnspec.notation import Call, Expr, Name
from rnnspec.spec import SPECS_DIR, Cell, Equation, all_specs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HYPOTHESES_PATH = SPECS_DIR / "hypotheses.toml"
FEATURES = (
    "bias",
    "bidirectional",
    "layers",
    "stacked",
    "packed",
    "proj",
    "given_state",
    "no_state",
)
PROBES = ("explicit_zero_state", "second_call")


@dataclass(frozen=True)
class Hypothesis:
    """One ``[[hypothesis]]`` entry of the library, before it is applied to a cell."""

    name: str
    kind: str
    description: str
    fix: str
    cells: frozenset[str] | None
    requires: frozenset[str]
    options: Mapping[str, Any] = field(compare=False, hash=False)

    def applies(self, cell: Cell, case: Case) -> bool:
        config = case.config
        present = {
            "bias": config.bias,
            "bidirectional": config.bidirectional,
            "layers": config.num_layers > 1,
            "stacked": config.bidirectional and config.num_layers > 1,
            "packed": case.packed,
            "proj": config.proj_size > 0,
            "given_state": case.given_state,
            "no_state": not case.given_state,
        }
        return (self.cells is None or cell.name in self.cells) and all(
            present[feature] for feature in self.requires
        )


@dataclass(frozen=True)
class Explanation:
    """A hypothesis applied to a case's cell: its name, what it says, the fix, the model."""

    name: str
    description: str
    fix: str
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
        if not isinstance(name, str) or kind not in {*KINDS, "probe"}:
            raise SpecSemanticError(f"{where}: needs a name and a kind in {sorted(KINDS)} or probe")
        if kind == "probe" and options.get("probe") not in PROBES:
            raise SpecSemanticError(f"{where}: probe must be one of {PROBES}")
        requires = frozenset(options.pop("requires", ()))
        if not requires <= set(FEATURES):
            raise SpecSemanticError(f"{where}: requires must be among {FEATURES}")
        cells = options.pop("cells", None)
        found.append(
            Hypothesis(
                name,
                kind,
                options.pop("description", name),
                options.pop("fix", ""),
                None if cells is None else frozenset(cells),
                requires,
                options,
            )
        )
    return tuple(found)


@cache
def library() -> tuple[Hypothesis, ...]:
    return load_library()


def probes(case: Case) -> list[Hypothesis]:
    """The probes of the library that apply to ``case`` (re-runs of the candidate)."""
    cell = case.config.resolve()
    return [h for h in library() if h.kind == "probe" and h.applies(cell, case)]


def explanations(case: Case) -> list[Explanation]:
    """Every predicting hypothesis of the library that can show on ``case``, for its cell."""
    cell = case.config.resolve()
    found = []
    for hypothesis in library():
        if hypothesis.kind != "probe" and hypothesis.applies(cell, case):
            found.extend(KINDS[hypothesis.kind](hypothesis, cell, case.config))
    return found


def network_name(cell: Cell) -> str:
    """How verdicts name the network: ``GRU``, ``LSTM``, or the cell's title."""
    return cell.kind.upper() if len(cell.kind) <= 4 else cell.title


def describe(hypothesis: Hypothesis, cell: Cell, **values: str) -> tuple[str, str]:
    """The hypothesis's description and fix, filled in for ``cell``."""
    fill = {
        "net": network_name(cell),
        "cell": cell.name,
        "gates": ", ".join(cell.gates),
        **values,
    }
    return hypothesis.description.format(**fill), hypothesis.fix.format(**fill)


def _explain(
    hypothesis: Hypothesis, cell: Cell, model: Model, name: str | None = None, **values: str
) -> Explanation:
    description, fix = describe(hypothesis, cell, **values)
    return Explanation(name or hypothesis.name, description, fix, model)


# -- kinds: each turns a hypothesis into explanations for one cell ------------------------
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

        name = hypothesis.name.format(order=",".join(order))
        found.append(
            _explain(hypothesis, cell, Model(cell, transform), name, order=", ".join(order))
        )
    return found


def _zero_parameter(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    name = hypothesis.options["parameter"]

    def transform(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w[name] = np.zeros_like(w[name])
        return w

    return [_explain(hypothesis, cell, Model(cell, transform))]


def _add_to_block(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    name, block = hypothesis.options["parameter"], hypothesis.options["block"]
    param = cell.parameter(name)
    index, value = param.blocks.index(block), float(hypothesis.options["value"])

    def transform(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        blocks = np.split(w[name].copy(), len(param.blocks))
        blocks[index] += value
        w[name] = np.concatenate(blocks)
        return w

    return [_explain(hypothesis, cell, Model(cell, transform))]


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

    return [_explain(hypothesis, cell, Model(cell, transform))]


def _variant(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    other = all_specs()[cell.kind].cell(hypothesis.options["variant"])
    return [_explain(hypothesis, cell, Model(other))]


def _equations(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    replaced = {target: _parse(text) for target, text in hypothesis.options["equations"].items()}
    changed = _with_equations(cell, replaced, hypothesis.name)
    return [_explain(hypothesis, cell, Model(changed))]


def _calling(cell: Cell, function: str) -> list[str]:
    """The targets of the cell's equations that call ``function``."""
    return [
        eq.target
        for eq in cell.equations
        if any(isinstance(node, Call) and node.func == function for node in eq.expr.walk())
    ]


def _rewrite(
    cell: Cell, targets: Iterable[str], function: str, replacement: str, label: str
) -> Cell:
    rewritten = {
        eq.target: notation.transform(eq.expr, _call_rewriter(function, replacement))
        for eq in cell.equations
        if eq.target in targets
    }
    return _with_equations(cell, rewritten, label)


def _rewrite_function(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    function, replacement = hypothesis.options["function"], hypothesis.options["with"]
    calling = _calling(cell, function)
    choices = [tuple(calling)] if calling else []
    if hypothesis.options.get("each") and len(calling) > 1:
        choices += [(target,) for target in calling]
    found = []
    for targets in choices:
        changed = _rewrite(
            cell, targets, function, replacement, f"{hypothesis.name}_{'_'.join(targets)}"
        )
        found.append(_explain(hypothesis, cell, Model(changed), targets=", ".join(targets)))
    return found


def _read_out(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    """``function`` dropped from the recurrence of the output state and applied to the
    output only: the state carried is the linear pre-activation, and the state returned is
    either that or, as an adapter around a network that returns only its outputs would
    have it, the last output read out."""
    function = hypothesis.options["function"]
    if cell.output not in _calling(cell, function):
        return []
    changed = _rewrite(cell, [cell.output], function, "identity", hypothesis.name)
    return [
        _explain(hypothesis, cell, Model(changed, read_out=function, final_from_last_step=last))
        for last in (False, True)
    ]


def _state_layout(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    order = hypothesis.options["order"]
    if order not in ("direction_major", "swapped"):
        raise SpecSemanticError(f"{hypothesis.name}: unknown state order {order!r}")
    if order == "swapped":
        swappable = len(cell.states) == 2 and config.proj_size == 0
        return [_explain(hypothesis, cell, Model(cell, states_swapped=True))] if swappable else []
    names = {state.name for state in cell.states}
    states = tuple(name for name in hypothesis.options["states"] if name in names)
    return [_explain(hypothesis, cell, Model(cell, direction_major=states))]


def _initial_state(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    mode = hypothesis.options["mode"]
    if mode not in INITIAL_MODES[1:]:
        raise SpecSemanticError(f"{hypothesis.name}: unknown initial state mode {mode!r}")
    return [_explain(hypothesis, cell, Model(cell, initial=mode))]


def _final_state(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    if hypothesis.options["mode"] != "last_step":
        raise SpecSemanticError(f"{hypothesis.name}: unknown final state mode")
    return [_explain(hypothesis, cell, Model(cell, final_from_last_step=True))]


def _composition(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    reverse = hypothesis.options.get("reverse", "aligned")
    feed = hypothesis.options.get("feed", "in_order")
    if reverse not in REVERSE_MODES or feed not in FEEDS:
        raise SpecSemanticError(
            f"{hypothesis.name}: reverse must be in {REVERSE_MODES}, feed in {FEEDS}"
        )
    return [_explain(hypothesis, cell, Model(cell, reverse=reverse, feed=feed))]


def _packing(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    if hypothesis.options["mode"] != "ignored":
        raise SpecSemanticError(f"{hypothesis.name}: unknown packing mode")
    return [_explain(hypothesis, cell, Model(cell, lengths_ignored=True))]


def _projection(hypothesis: Hypothesis, cell: Cell, config: RNNConfig) -> list[Explanation]:
    if hypothesis.options["mode"] != "skipped":
        raise SpecSemanticError(f"{hypothesis.name}: unknown projection mode")
    return [_explain(hypothesis, cell, Model(cell, proj_ignored=True))]


KINDS: dict[str, Callable[[Hypothesis, Cell, RNNConfig], list[Explanation]]] = {
    "permute_blocks": _permute_blocks,
    "zero_parameter": _zero_parameter,
    "add_to_block": _add_to_block,
    "transpose_blocks": _transpose_blocks,
    "variant": _variant,
    "equations": _equations,
    "rewrite_function": _rewrite_function,
    "read_out": _read_out,
    "state_layout": _state_layout,
    "initial_state": _initial_state,
    "final_state": _final_state,
    "composition": _composition,
    "packing": _packing,
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
