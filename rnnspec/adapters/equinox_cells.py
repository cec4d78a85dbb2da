"""Equinox's ``eqx.nn.GRUCell`` and ``LSTMCell``, scanned over time with ``jax.lax.scan``.

The mapping, read from equinox 0.13's ``equinox/nn/_rnn.py``: the cells take one
example (vmapped over the batch here) and keep PyTorch's ``(gates·H, in)`` weights and
gate order. ``GRUCell`` has ``bias`` (3H) added to the input projection and ``bias_n``
inside the reset product: ``n = tanh(W_in x + bias[n] + r * (W_hn h + bias_n))``, so
``bias = b_ih + (b_hr, b_hz, 0)`` and ``bias_n = b_hn``: PyTorch's ``gru`` exactly.
``LSTMCell`` has one ``bias`` = ``b_ih + b_hh``, state ``(h, c)``. ``use_bias=False``
has no biases at all. Equinox has no Elman cell.
"""

from __future__ import annotations

from typing import Any

from rnnspec.adapters import not_installed
from rnnspec.adapters.jax_network import Gates, States, implementation
from rnnspec.config import RNNConfig
from rnnspec.protocol import Implementation


def cell(kind: str, config: RNNConfig, g: Gates, dtype: Any) -> Any:
    """The Equinox cell for one direction, holding the canonical weights ``g``."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    cell_class = eqx.nn.LSTMCell if kind == "lstm" else eqx.nn.GRUCell
    made = cell_class(
        g.w_ih[0].shape[1],
        config.hidden_size,
        use_bias=config.bias,
        dtype=dtype,
        key=jax.random.key(0),
    )
    w_ih, w_hh = jnp.concatenate(g.w_ih), jnp.concatenate(g.w_hh)
    made = eqx.tree_at(lambda c: (c.weight_ih, c.weight_hh), made, (w_ih, w_hh))
    if not config.bias:
        return made
    if kind == "lstm":
        return eqx.tree_at(
            lambda c: c.bias, made, jnp.concatenate(g.b_ih) + jnp.concatenate(g.b_hh)
        )
    bias = jnp.concatenate([g.b_ih[0] + g.b_hh[0], g.b_ih[1] + g.b_hh[1], g.b_ih[2]])
    return eqx.tree_at(lambda c: (c.bias, c.bias_n), made, (bias, g.b_hh[2]))


def layer(
    config: RNNConfig, blocks: list[Gates], xs: Any, initial: list[States]
) -> tuple[Any, list[States]]:
    """Each direction one ``jax.lax.scan`` of the vmapped cell; outputs concatenated."""
    import jax
    import jax.numpy as jnp

    kind = config.resolve().kind
    outputs, finals = [], []
    for direction, (g, state) in enumerate(zip(blocks, initial, strict=True)):
        step = jax.vmap(cell(kind, config, g, xs.dtype))

        def body(carry: Any, x: Any, step: Any = step) -> tuple[Any, Any]:
            new = step(x, carry)
            return new, new[0] if kind == "lstm" else new

        carry = state if kind == "lstm" else state[0]
        final, ys = jax.lax.scan(body, carry, xs, reverse=direction == 1)
        outputs.append(ys)
        finals.append(tuple(final) if kind == "lstm" else (final,))
    return jnp.concatenate(outputs, axis=-1), finals


def equinox() -> Implementation:
    """``eqx.nn.GRUCell`` and ``eqx.nn.LSTMCell`` scanned over time."""
    not_installed("equinox", "equinox", "jax", "equinox")
    return implementation(
        "equinox",
        layer,
        ("gru", "lstm"),
        "equinox eqx.nn.GRUCell, eqx.nn.LSTMCell scanned with jax.lax.scan",
    )
