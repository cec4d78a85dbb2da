"""Flax's recurrent cells under ``RNN`` and ``Bidirectional``, linen and nnx.

The mapping, read from flax 0.12's ``flax/linen/recurrent.py`` and
``flax/nnx/nn/recurrent.py`` (kernels are ``(in, out)``: the transpose of PyTorch's):

- ``SimpleCell``: ``h' = act(x @ i.kernel + i.bias + h @ h.kernel)``: one bias,
  ``b_ih + b_hh``; ``activation_fn=relu`` is ``elman:relu``.
- linen ``GRUCell``: one ``Dense`` per gate, ``ir``, ``iz``, ``in`` with bias, ``hr``,
  ``hz`` without, ``hn`` with: ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))``,
  ``h' = (1 - z) n + z h``. PyTorch's ``gru`` exactly: r and z take ``b_i + b_h``.
- nnx ``GRUCell``: ``dense_i`` (r, z, n columns, with bias) and ``dense_h`` **without**
  bias: ``n = tanh(x W_in + b_in + r * (h W_hn))``. There is no ``b_hn``, so it computes
  ``gru`` only when ``b_hn = 0`` (flax#5594), and no spec otherwise; it is declared ``gru``
  and the conformance run shows it.
- ``LSTMCell``: per gate ``ii``.. ``io`` (nnx: ``if_``) without bias and ``hi``.. ``ho``
  with: one bias per gate, ``b_ih + b_hh``; gate order i, f, g, o; carry ``(c, h)``.
- ``OptimizedLSTMCell``: linen keeps ``LSTMCell``'s parameters; nnx has ``dense_i`` and
  ``dense_h`` with columns i, f, g, o, bias on ``dense_h``.

``bias=False`` holds the biases at zero (none of these cells can drop them), which
computes the same network.
"""

from __future__ import annotations

import functools
from typing import Any

from rnnspec.adapters import not_installed
from rnnspec.adapters.jax_network import Gates, States, implementation
from rnnspec.config import RNNConfig
from rnnspec.protocol import Implementation

CLASSES = {"elman": "SimpleCell", "gru": "GRUCell"}
CELLS = ("elman", "elman:relu", "gru", "lstm")


def _options(config: RNNConfig, relu: Any) -> dict[str, Any]:
    return {"activation_fn": relu} if config.cell == "elman:relu" else {}


def _carry(kind: str, state: States) -> Any:
    """The canonical ``(h,)`` or ``(h, c)`` as Flax's carry: ``h`` or ``(c, h)``."""
    return (state[1], state[0]) if kind == "lstm" else state[0]


def _state(kind: str, carry: Any) -> States:
    return (carry[1], carry[0]) if kind == "lstm" else (carry,)


LINEN_LSTM = ("ii", "if", "ig", "io")
NNX_LSTM = ("ii", "if_", "ig", "io")  # nnx renames ``if``, a Python keyword


def _lstm_gates(g: Gates, input_names: tuple[str, ...]) -> dict[str, Any]:
    """Per gate (i, f, g, o): the input kernel, and the hidden kernel with both biases."""
    params: dict[str, Any] = {}
    for index, (name, gate) in enumerate(zip(input_names, "ifgo", strict=True)):
        params[name] = {"kernel": g.w_ih[index].T}
        params["h" + gate] = {"kernel": g.w_hh[index].T, "bias": g.b_ih[index] + g.b_hh[index]}
    return params


def linen_params(kind: str, g: Gates) -> dict[str, Any]:
    """Canonical weights of one direction as the linen cell's ``params``."""
    if kind == "elman":
        return {
            "i": {"kernel": g.w_ih[0].T, "bias": g.b_ih[0] + g.b_hh[0]},
            "h": {"kernel": g.w_hh[0].T},
        }
    if kind == "gru":
        params = {
            "i" + gate: {"kernel": g.w_ih[index].T, "bias": g.b_ih[index] + g.b_hh[index]}
            for index, gate in enumerate("rz")
        }
        params.update({"h" + gate: {"kernel": g.w_hh[index].T} for index, gate in enumerate("rz")})
        params["in"] = {"kernel": g.w_ih[2].T, "bias": g.b_ih[2]}
        params["hn"] = {"kernel": g.w_hh[2].T, "bias": g.b_hh[2]}
        return params
    return _lstm_gates(g, LINEN_LSTM)


def _linen_layer(
    lstm_class: str, config: RNNConfig, blocks: list[Gates], xs: Any, initial: list[States]
) -> tuple[Any, list[States]]:
    import flax.linen as nn

    kind = config.resolve().kind
    cell_class = getattr(nn, lstm_class if kind == "lstm" else CLASSES[kind])
    options = dict(features=config.hidden_size, dtype=xs.dtype, param_dtype=xs.dtype)
    options.update(_options(config, nn.relu))
    carries = [_carry(kind, state) for state in initial]
    params = [linen_params(kind, g) for g in blocks]
    if len(blocks) == 1:
        rnn = nn.RNN(cell_class(**options), time_major=True, return_carry=True)
        carry, out = rnn.apply({"params": {"cell": params[0]}}, xs, initial_carry=carries[0])
        return out, [_state(kind, carry)]
    both = nn.Bidirectional(
        nn.RNN(cell_class(**options)),
        nn.RNN(cell_class(**options)),
        time_major=True,
        return_carry=True,
    )
    variables = {
        "params": {"forward_rnn": {"cell": params[0]}, "backward_rnn": {"cell": params[1]}}
    }
    (forward, backward), out = both.apply(variables, xs, initial_carry=tuple(carries))
    return out, [_state(kind, forward), _state(kind, backward)]


def nnx_load(kind: str, cell: Any, g: Gates) -> None:
    """Canonical weights of one direction into an nnx cell's parameters."""
    import jax.numpy as jnp

    if kind == "lstm" and hasattr(cell, "dense_i"):  # OptimizedLSTMCell
        cell.dense_i.kernel.set_value(jnp.concatenate(g.w_ih).T)
        cell.dense_h.kernel.set_value(jnp.concatenate(g.w_hh).T)
        cell.dense_h.bias.set_value(jnp.concatenate(g.b_ih) + jnp.concatenate(g.b_hh))
        return
    if kind == "lstm":
        for name, value in _lstm_gates(g, NNX_LSTM).items():
            for leaf, array in value.items():
                getattr(getattr(cell, name), leaf).set_value(array)
        return
    cell.dense_i.kernel.set_value(jnp.concatenate(g.w_ih).T)
    cell.dense_h.kernel.set_value(jnp.concatenate(g.w_hh).T)
    if kind == "elman":
        cell.dense_i.bias.set_value(g.b_ih[0] + g.b_hh[0])
    else:  # GRU: r and z take both biases; n has only b_in, nnx has no b_hn
        biases = [g.b_ih[0] + g.b_hh[0], g.b_ih[1] + g.b_hh[1], g.b_ih[2]]
        cell.dense_i.bias.set_value(jnp.concatenate(biases))


def _nnx_layer(
    lstm_class: str, config: RNNConfig, blocks: list[Gates], xs: Any, initial: list[States]
) -> tuple[Any, list[States]]:
    from flax import nnx

    kind = config.resolve().kind
    cell_class = getattr(nnx, lstm_class if kind == "lstm" else CLASSES[kind])

    def make(g: Gates) -> Any:
        cell = cell_class(
            in_features=xs.shape[-1],
            hidden_features=config.hidden_size,
            dtype=xs.dtype,
            param_dtype=xs.dtype,
            rngs=nnx.Rngs(0),
            **_options(config, nnx.relu),
        )
        nnx_load(kind, cell, g)
        return cell

    carries = [_carry(kind, state) for state in initial]
    if len(blocks) == 1:
        rnn = nnx.RNN(make(blocks[0]), time_major=True, return_carry=True)
        carry, out = rnn(xs, initial_carry=carries[0])
        return out, [_state(kind, carry)]
    both = nnx.Bidirectional(
        nnx.RNN(make(blocks[0])), nnx.RNN(make(blocks[1])), time_major=True, return_carry=True
    )
    (forward, backward), out = both(xs, initial_carry=tuple(carries))
    return out, [_state(kind, forward), _state(kind, backward)]


LINEN = functools.partial(_linen_layer, "LSTMCell")
LINEN_OPTIMIZED = functools.partial(_linen_layer, "OptimizedLSTMCell")
NNX = functools.partial(_nnx_layer, "LSTMCell")
NNX_OPTIMIZED = functools.partial(_nnx_layer, "OptimizedLSTMCell")


def _built_in(name: str, api: str, layer: Any, cells: tuple[str, ...], what: str) -> Implementation:
    """One Flax built-in, or :class:`NotInstalled` naming ``pip install rnnspec[flax]``."""
    not_installed("flax", name, "jax", f"flax.{api}")
    wrappers = "nn.RNN / nn.Bidirectional" if api == "linen" else "nnx.RNN / nnx.Bidirectional"
    return implementation(name, layer, cells, f"flax.{api} {what} under {wrappers}")


def linen() -> Implementation:
    """``flax.linen``: SimpleCell, GRUCell, LSTMCell under ``RNN`` / ``Bidirectional``."""
    return _built_in("flax", "linen", LINEN, CELLS, "SimpleCell, GRUCell, LSTMCell")


def linen_optimized() -> Implementation:
    """``flax.linen.OptimizedLSTMCell`` under ``RNN`` / ``Bidirectional``."""
    return _built_in("flax-optimized", "linen", LINEN_OPTIMIZED, ("lstm",), "OptimizedLSTMCell")


def nnx_cells() -> Implementation:
    """``flax.nnx``: SimpleCell, GRUCell (no b_hn), LSTMCell under ``RNN`` / ``Bidirectional``."""
    return _built_in("flax-nnx", "nnx", NNX, CELLS, "SimpleCell, GRUCell, LSTMCell")


def nnx_optimized() -> Implementation:
    """``flax.nnx.OptimizedLSTMCell`` under ``RNN`` / ``Bidirectional``."""
    return _built_in("flax-nnx-optimized", "nnx", NNX_OPTIMIZED, ("lstm",), "OptimizedLSTMCell")
