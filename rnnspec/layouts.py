"""Layout helpers: move RNN weights and states between the canonical layout and others.

The canonical layout is PyTorch's: per layer and direction, ``weight_ih`` (gates·H, I),
``weight_hh`` (gates·H, H), ``bias_ih`` and ``bias_hh`` (gates·H), gates stacked LSTM
(i, f, g, o), GRU (r, z, n); states stacked (L·D, B, H) with index ``layer · D + direction``.
Gates are named as in the specs (``rnnspec show lstm``): LSTM ``i f g o``, GRU ``r z n``,
Elman ``h``. Every function here works on NumPy arrays and, where only indexing and
concatenation are involved, on torch tensors too.

The mappings onto ONNX's and Keras' layouts (:func:`to_onnx`, :func:`from_onnx`,
:func:`to_keras`, :func:`from_keras`) are the README's mapping tables as code; the
built-in ``onnxruntime`` and ``keras`` implementations use them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnspec.config import RNNConfig, canonical_name

# The order in which each library stacks the gate blocks, in canonical gate names.
GATE_ORDERS: dict[str, dict[str, tuple[str, ...]]] = {
    "pytorch": {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "elman": ("h",)},
    "onnx": {"lstm": ("i", "o", "f", "g"), "gru": ("z", "r", "n"), "elman": ("h",)},
    "keras": {"lstm": ("i", "f", "g", "o"), "gru": ("z", "r", "n"), "elman": ("h",)},
    "flax": {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "elman": ("h",)},
}
# ONNX's peephole vector P stacks (i, o, f); the canonical weight_peephole stacks (i, f, o).
ONNX_PEEPHOLES = ("i", "o", "f")
CANONICAL_PEEPHOLES = ("i", "f", "o")
Order = str | Sequence[str]


def gate_order(library: str, kind: str) -> tuple[str, ...]:
    """The gate order ``library`` (pytorch, onnx, keras, flax) uses for ``kind``
    (``lstm``, ``gru``, ``elman``; a variant such as ``gru:reset_before`` names its kind)."""
    kind = kind.partition(":")[0]
    try:
        return GATE_ORDERS[library][kind]
    except KeyError:
        raise ValueError(
            f"no gate order for {library!r} {kind!r}: libraries {sorted(GATE_ORDERS)}, "
            f"kinds {sorted(GATE_ORDERS['pytorch'])}"
        ) from None


def _order(order: Order, kind: str) -> tuple[str, ...]:
    return gate_order(order, kind) if isinstance(order, str) else tuple(order)


def split_gates(array: Any, order: Sequence[str], axis: int = 0) -> dict[str, Any]:
    """The gate blocks of ``array`` stacked along ``axis`` in ``order``, by gate name."""
    size, remainder = divmod(array.shape[axis], len(order))
    if remainder:
        raise ValueError(
            f"axis {axis} of length {array.shape[axis]} does not split into "
            f"{len(order)} gates {tuple(order)}"
        )
    index = [slice(None)] * array.ndim
    blocks = {}
    for position, gate in enumerate(order):
        index[axis] = slice(position * size, (position + 1) * size)
        blocks[gate] = array[tuple(index)]
    return blocks


def stack_gates(blocks: Mapping[str, Any], order: Sequence[str], axis: int = 0) -> Any:
    """Gate blocks stacked along ``axis`` in ``order`` (the inverse of :func:`split_gates`)."""
    missing = [gate for gate in order if gate not in blocks]
    if missing:
        raise KeyError(f"gates {missing} missing: got {sorted(blocks)}")
    parts = [blocks[gate] for gate in order]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=axis)
    import torch

    return torch.cat(parts, dim=axis)


def permute_gates(
    array: Any, source: Order, target: Order, *, kind: str = "lstm", axis: int = 0
) -> Any:
    """``array``'s gate blocks along ``axis`` reordered from ``source`` to ``target``: each
    a library name (``"onnx"``, gate order of ``kind``) or a sequence of gate names.

    ``permute_gates(W, "onnx", "pytorch", kind="lstm")`` turns ONNX's (i, o, f, g) blocks
    into PyTorch's (i, f, g, o)."""
    source_order, target_order = _order(source, kind), _order(target, kind)
    if sorted(source_order) != sorted(target_order):
        raise ValueError(f"gate orders {source_order} and {target_order} name different gates")
    return stack_gates(split_gates(array, source_order, axis), target_order, axis)


def fuse_input_hidden(weight_ih: Any, weight_hh: Any, *, axis: int = 1) -> Any:
    """``[W_x | W_h]``: the input and hidden matrices side by side along ``axis`` (1 for
    PyTorch's (gates·H, I) shapes; 0 for Keras-style (I, gates·H) kernels)."""
    return stack_gates({"x": weight_ih, "h": weight_hh}, ("x", "h"), axis)


def split_input_hidden(fused: Any, input_size: int, *, axis: int = 1) -> tuple[Any, Any]:
    """The inverse of :func:`fuse_input_hidden`: ``(W_x, W_h)``, W_x ``input_size`` wide."""
    index = [slice(None)] * fused.ndim
    index[axis] = slice(0, input_size)
    weight_ih = fused[tuple(index)]
    index[axis] = slice(input_size, None)
    return weight_ih, fused[tuple(index)]


def one_bias(bias_ih: Any, bias_hh: Any) -> Any:
    """The single bias of a library that adds one (TF/Keras LSTM, Elman): their sum."""
    return bias_ih + bias_hh


def two_biases(bias: Any) -> tuple[Any, Any]:
    """Canonical ``(bias_ih, bias_hh)`` from one bias: all of it on the input side."""
    return bias, bias * 0


def to_named(
    array: Any,
    template: str,
    gates: Mapping[str, str],
    order: Order = "pytorch",
    *,
    kind: str = "lstm",
    axis: int = 0,
    transpose: bool = False,
) -> dict[str, Any]:
    """Per-gate named matrices from a stacked canonical one: ``template`` with ``{gate}``
    filled by ``gates[canonical gate]`` (the library's letter for it).

    ``to_named(weight_ih, "W_x{gate}", {"i": "i", "f": "f", "g": "c", "o": "o"},
    transpose=True)`` gives ``{"W_xi": ..., "W_xf": ..., "W_xc": ..., "W_xo": ...}``, each
    (I, H) for ``X @ W`` code."""
    blocks = split_gates(array, _order(order, kind), axis)
    return {
        template.format(gate=gates[gate]): block.T if transpose else block
        for gate, block in blocks.items()
    }


def from_named(
    named: Mapping[str, Any],
    template: str,
    gates: Mapping[str, str],
    order: Order = "pytorch",
    *,
    kind: str = "lstm",
    axis: int = 0,
    transpose: bool = False,
) -> Any:
    """The inverse of :func:`to_named`: the stacked matrix in ``order``."""
    blocks = {}
    for gate in _order(order, kind):
        value = named[template.format(gate=gates[gate])]
        blocks[gate] = value.T if transpose else value
    return stack_gates(blocks, _order(order, kind), axis)


def unstack_states(stacked: Any, num_layers: int, num_directions: int) -> list[list[Any]]:
    """``(L·D, B, H)`` states as ``states[layer][direction]``, each (B, H)."""
    if stacked.shape[0] != num_layers * num_directions:
        raise ValueError(
            f"state has {stacked.shape[0]} slices, but {num_layers} layers x "
            f"{num_directions} directions need {num_layers * num_directions}"
        )
    return [
        [stacked[layer * num_directions + direction] for direction in range(num_directions)]
        for layer in range(num_layers)
    ]


def stack_states(per_layer: Sequence[Sequence[Any]]) -> Any:
    """The inverse of :func:`unstack_states`: ``(L·D, B, H)``, index ``layer · D + direction``."""
    flat = [state for layer in per_layer for state in layer]
    if isinstance(flat[0], np.ndarray):
        return np.stack(flat)
    import torch

    return torch.stack(flat)


# --- ONNX: W, R, B (and P) per layer, directions stacked on axis 0 --------------------


def _direction_weights(
    weights: Mapping[str, Any], config: RNNConfig, layer: int, direction: int
) -> dict[str, Any]:
    """The canonical weights of one layer and direction, under their layer-0 names."""
    return {p: weights[canonical_name(p, layer, direction)] for p in _parameters(config)}


def _parameters(config: RNNConfig) -> list[str]:
    cell = config.resolve()
    return [p.name for p in cell.active_parameters(bias=config.bias, proj=config.proj_size > 0)]


def _gates(config: RNNConfig) -> tuple[str, ...]:
    return tuple(config.resolve().gates)


def _onnx_gates(config: RNNConfig) -> tuple[str, ...]:
    """ONNX's order; a coupled LSTM still has an f block (ignored, zero here)."""
    return gate_order("onnx", config.kind)


def to_onnx(
    weights: Mapping[str, np.ndarray], config: RNNConfig, layer: int
) -> dict[str, np.ndarray]:
    """ONNX's ``W``, ``R``, ``B`` (and ``P`` for ``lstm:peephole``) of one layer.

    W is (D, gates·H, I), R (D, gates·H, H), B (D, 2·gates·H) = ``[Wb, Rb]``, P (D, 3·H) in
    ONNX's gate order (LSTM i, o, f, c; GRU z, r, h). Without bias, B is zeros (ONNX's
    default). ``lstm:coupled`` has no f block; ONNX's is zero and unused (input_forget=1).
    """
    if config.proj_size:
        raise ValueError("ONNX's LSTM has no projection (proj_size)")
    onnx_gates, gates = _onnx_gates(config), _gates(config)
    found: dict[str, list[np.ndarray]] = {"W": [], "R": [], "B": [], "P": []}
    for direction in range(config.num_directions):
        own = _direction_weights(weights, config, layer, direction)

        def onnx_blocks(name: str, own: dict[str, Any] = own) -> np.ndarray:
            blocks = split_gates(np.asarray(own[name]), gates)
            zero = np.zeros_like(next(iter(blocks.values())))
            return stack_gates({g: blocks.get(g, zero) for g in onnx_gates}, onnx_gates)

        found["W"].append(onnx_blocks("weight_ih"))
        found["R"].append(onnx_blocks("weight_hh"))
        if config.bias:
            found["B"].append(np.concatenate([onnx_blocks("bias_ih"), onnx_blocks("bias_hh")]))
        else:
            found["B"].append(np.zeros(2 * found["W"][-1].shape[0]))
        if "weight_peephole" in own:
            peepholes = split_gates(np.asarray(own["weight_peephole"]), CANONICAL_PEEPHOLES)
            found["P"].append(stack_gates(peepholes, ONNX_PEEPHOLES))
    return {name: np.stack(value) for name, value in found.items() if value}


def from_onnx(
    onnx_weights: Mapping[str, np.ndarray], config: RNNConfig, layer: int
) -> dict[str, np.ndarray]:
    """The canonical weights of one layer from ONNX's ``W``, ``R``, ``B``, ``P`` (the inverse
    of :func:`to_onnx`); a missing B gives zero biases when ``config.bias``."""
    onnx_gates, gates = _onnx_gates(config), _gates(config)
    found = {}
    for direction in range(config.num_directions):

        def canonical(array: np.ndarray) -> np.ndarray:
            return stack_gates(split_gates(array, onnx_gates), gates)

        def name(param: str, direction: int = direction) -> str:
            return canonical_name(param, layer, direction)

        found[name("weight_ih")] = canonical(onnx_weights["W"][direction])
        found[name("weight_hh")] = canonical(onnx_weights["R"][direction])
        if config.bias:
            bias = onnx_weights.get("B")
            size = onnx_weights["W"].shape[1]
            both = np.zeros(2 * size) if bias is None else bias[direction]
            found[name("bias_ih")] = canonical(both[:size])
            found[name("bias_hh")] = canonical(both[size:])
        if "weight_peephole" in _parameters(config):
            peepholes = onnx_weights.get("P")
            hidden = config.hidden_size
            vector = np.zeros(3 * hidden) if peepholes is None else peepholes[direction]
            found[name("weight_peephole")] = stack_gates(
                split_gates(vector, ONNX_PEEPHOLES), CANONICAL_PEEPHOLES
            )
    return found


# --- Keras: kernel (I, gates·H), recurrent_kernel (H, gates·H), bias ------------------


def keras_bias_shape(config: RNNConfig) -> tuple[int, ...]:
    """Keras' bias: (2, 3H) for a reset-after GRU (input and recurrent biases), else one
    (gates·H,) vector, the sum of the canonical two."""
    width = len(gate_order("keras", config.kind)) * config.hidden_size
    return (2, width) if config.cell == "gru" else (width,)


def to_keras(
    weights: Mapping[str, np.ndarray], config: RNNConfig, layer: int, direction: int
) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel(, bias)]`` for ``layer.set_weights`` of a Keras
    SimpleRNN, GRU or LSTM: transposed, gate columns in Keras' order (LSTM i, f, c, o; GRU
    z, r, h); one bias (the sum), except the reset-after GRU's (2, 3H) = (b_ih, b_hh)."""
    if config.proj_size:
        raise ValueError("Keras' LSTM has no projection (proj_size)")
    own = _direction_weights(weights, config, layer, direction)

    def keras(array: np.ndarray) -> np.ndarray:
        return permute_gates(np.asarray(array), "pytorch", "keras", kind=config.kind)

    found = [keras(own["weight_ih"]).T, keras(own["weight_hh"]).T]
    if config.bias:
        bias_ih, bias_hh = keras(own["bias_ih"]), keras(own["bias_hh"])
        both = np.stack([bias_ih, bias_hh]) if config.cell == "gru" else one_bias(bias_ih, bias_hh)
        found.append(both)
    return found


def from_keras(
    keras_weights: Sequence[np.ndarray], config: RNNConfig, layer: int, direction: int
) -> dict[str, np.ndarray]:
    """The canonical weights of one layer and direction from Keras' ``get_weights()``
    (the inverse of :func:`to_keras`; one bias lands in ``bias_ih``, ``bias_hh`` is 0)."""

    def canonical(array: np.ndarray) -> np.ndarray:
        return permute_gates(np.asarray(array), "keras", "pytorch", kind=config.kind)

    def name(param: str) -> str:
        return canonical_name(param, layer, direction)

    found = {
        name("weight_ih"): canonical(keras_weights[0].T),
        name("weight_hh"): canonical(keras_weights[1].T),
    }
    if config.bias:
        bias = np.asarray(keras_weights[2])
        bias_ih, bias_hh = (bias[0], bias[1]) if bias.ndim == 2 else two_biases(bias)
        found[name("bias_ih")] = canonical(bias_ih)
        found[name("bias_hh")] = canonical(bias_hh)
    return found
