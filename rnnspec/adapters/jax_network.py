"""torch.nn's RNN call convention over the recurrent layers of JAX libraries.

Flax and Equinox give one recurrent layer (a cell scanned over time, in one or both
directions); rnnspec stacks layers, handles ``batch_first``, unbatched input, ``hx=None``
and the ``(L·D, B, H)`` state layout, and rejects malformed input like ``torch.nn``. Each
library module supplies a :data:`Layer`: one layer run from the canonical weights (PyTorch's
names, gate order and two biases), mapped onto that library's parameters inside the traced
function, so ``jax.vjp`` returns gradients of the canonical weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation

States = tuple[Any, ...]
"""One direction's state: ``(h,)`` or ``(h, c)``, each ``(B, H)``."""
Layer = Callable[[RNNConfig, list["Gates"], Any, list[States]], tuple[Any, list[States]]]
"""``(config, weights per direction, xs (T, B, F), state per direction) ->
(outputs (T, B, D·H), final state per direction)``."""


@dataclass(frozen=True)
class Gates:
    """One direction of one layer in canonical form, its gate blocks split apart."""

    w_ih: list[Any]
    w_hh: list[Any]
    b_ih: list[Any]
    b_hh: list[Any]


def gates(config: RNNConfig, weights: Mapping[str, Any], layer: int, direction: int) -> Gates:
    """The canonical weights of ``layer`` and ``direction`` split into gate blocks (LSTM
    i, f, g, o; GRU r, z, n; Elman one), zero biases when the config has none."""
    import jax.numpy as jnp

    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih, w_hh = weights["weight_ih" + suffix], weights["weight_hh" + suffix]
    count = w_hh.shape[0] // config.hidden_size
    zeros = jnp.zeros(w_hh.shape[0], w_hh.dtype)
    b_ih = weights.get("bias_ih" + suffix, zeros)
    b_hh = weights.get("bias_hh" + suffix, zeros)
    return Gates(*(jnp.split(value, count) for value in (w_ih, w_hh, b_ih, b_hh)))


@dataclass
class Network:
    """A network of ``layer`` runs for ``config``; the canonical weights, once loaded."""

    config: RNNConfig
    layer: Layer
    weights: dict[str, Any] = field(default_factory=dict)


def load_weights(network: Network, weights: Mapping[str, Any]) -> None:
    network.weights = dict(weights)


def call(network: Network, x: Any, hx: Any) -> tuple[Any, Any]:
    """``torch.nn.LSTM(...)(x, hx)``'s contract: ``(output, h_n)`` or ``(output, (h_n, c_n))``.

    The layout (batch_first, unbatched input) and the zero state for ``hx=None`` are made
    around the jitted network, so the configurations that differ only there share one
    compilation: compiling is most of what a JAX run costs on the CPU."""
    import jax.numpy as jnp

    config = network.config
    if x.ndim not in (2, 3):
        raise ValueError(f"input must be 2-D (unbatched) or 3-D, got shape {tuple(x.shape)}")
    unbatched = x.ndim == 2
    batch = 1 if unbatched else x.shape[0 if config.batch_first else 1]
    names = ("h", "c") if config.resolve().kind == "lstm" else ("h",)
    states = _states(config, hx, names, unbatched, batch)
    xs = x[:, None] if unbatched else x.swapaxes(0, 1) if config.batch_first else x
    if states is None:
        rows = config.num_layers * config.num_directions
        states = (jnp.zeros((rows, batch, config.hidden_size), xs.dtype),) * len(names)
    elif unbatched:
        states = tuple(state[:, None] for state in states)
    compiled = _compiled(network.layer, config.replace(batch_first=False))
    output, finals = compiled(network.weights, xs, states)
    if unbatched:
        output, finals = output[:, 0], tuple(state[:, 0] for state in finals)
    elif config.batch_first:
        output = output.swapaxes(0, 1)
    return output, finals if len(names) > 1 else finals[0]


def _states(
    config: RNNConfig, hx: Any, names: tuple[str, ...], unbatched: bool, batch: int
) -> tuple[Any, ...] | None:
    """hx checked against torch.nn's shapes: a tuple of them, or None."""
    if hx is None:
        return None
    given = tuple(hx) if isinstance(hx, tuple | list) else (hx,)
    if len(given) != len(names) or (len(names) == 1 and isinstance(hx, tuple | list)):
        raise ValueError(f"hx must be {' and '.join(names)}, got {len(given)} array(s)")
    rows = config.num_layers * config.num_directions
    expected = (rows, config.hidden_size) if unbatched else (rows, batch, config.hidden_size)
    for name, state in zip(names, given, strict=True):
        if tuple(state.shape) != expected:
            raise ValueError(f"{name}0 must have shape {expected}, got {tuple(state.shape)}")
    return given


@functools.cache
def _compiled(layer: Layer, config: RNNConfig) -> Callable[..., Any]:
    """The time-major network for ``config`` as one jitted function of (weights, xs
    (T, B, F), states (L·D, B, H) each) -> (outputs (T, B, D·H), final states)."""
    import jax
    import jax.numpy as jnp

    directions = config.num_directions

    def network(weights: Mapping[str, Any], xs: Any, states: tuple[Any, ...]) -> Any:
        finals: list[States] = []
        for index in range(config.num_layers):
            rows = range(index * directions, (index + 1) * directions)
            weight_blocks = [gates(config, weights, index, d) for d in range(directions)]
            initial = [tuple(state[row] for state in states) for row in rows]
            xs, last = layer(config, weight_blocks, xs, initial)
            finals.extend(last)
        return xs, tuple(jnp.stack([final[k] for final in finals]) for k in range(len(states)))

    return jax.jit(network)


def implementation(
    name: str, layer: Layer, cells: Collection[str], description: str, **declared: Any
) -> Implementation:
    """A JAX built-in: no projections, no dropout between layers, CPU and CUDA."""
    capabilities = Capabilities(
        cells=frozenset(cells),
        proj_size=False,
        dropout=False,
        packed=False,
        devices=frozenset({"cpu", "cuda"}),
        **declared,
    )
    return Implementation(
        name,
        lambda config, device, dtype: Network(config, layer),
        capabilities,
        load_weights=load_weights,
        call=call,
        framework="jax",
        description=description,
    )
