"""A JAX candidate written by hand: Elman, GRU and LSTM as ``jax.lax.scan`` over time.

It keeps PyTorch's weight names and gate order, so ``load_weights`` only stores the
canonical weights; the kit gets its gradients through ``jax.vjp``.
``pytest conformance --impl tests.jax_scan_rnn:implementation`` runs the suite on it;
``detached_bias`` is the same network with ``b_hh`` behind ``stop_gradient``: its forward
is right and its bias gradient never arrives, which only the gradient check sees.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation


def _step(kind: str, relu: bool, w: dict[str, Any], h: Any, x: Any) -> tuple[Any, Any]:
    """One time step; ``h`` is ``(h, c)`` for the LSTM."""
    state = h[0] if kind == "lstm" else h
    gi = x @ w["ih"].T + w["b_ih"]
    gh = state @ w["hh"].T + w["b_hh"]
    if kind == "elman":
        new = jax.nn.relu(gi + gh) if relu else jnp.tanh(gi + gh)
        return new, new
    if kind == "gru":
        i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
        r, z = jax.nn.sigmoid(i_r + h_r), jax.nn.sigmoid(i_z + h_z)
        n = jnp.tanh(i_n + r * h_n)
        new = (1 - z) * n + z * state
        return new, new
    i, f, g, o = jnp.split(gi + gh, 4, axis=-1)
    c = jax.nn.sigmoid(f) * h[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
    new = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (new, c), new


@functools.partial(jax.jit, static_argnums=(0, 4))
def _network(config: RNNConfig, weights: Any, xs: Any, states: Any, detach: bool) -> Any:
    """The time-major network: ``xs`` (T, B, F); batch_first is handled by the caller, so
    layouts share one compilation."""
    kind, relu = config.cell.split(":")[0], config.cell == "elman:relu"
    directions = 2 if config.bidirectional else 1
    finals = []
    for layer in range(config.num_layers):
        outputs = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            zero = jnp.zeros(weights["weight_hh" + suffix].shape[0], xs.dtype)
            w = {
                "ih": weights["weight_ih" + suffix],
                "hh": weights["weight_hh" + suffix],
                "b_ih": weights.get("bias_ih" + suffix, zero),
                "b_hh": weights.get("bias_hh" + suffix, zero),
            }
            if detach:
                w["b_hh"] = jax.lax.stop_gradient(w["b_hh"])
            row = layer * directions + direction
            carry = tuple(s[row] for s in states) if kind == "lstm" else states[0][row]
            step = functools.partial(_step, kind, relu, w)
            final, ys = jax.lax.scan(step, carry, xs, reverse=direction == 1)
            outputs.append(ys)
            finals.append(final if kind == "lstm" else (final,))
        xs = jnp.concatenate(outputs, axis=-1)
    return xs, tuple(jnp.stack(parts) for parts in zip(*finals, strict=True))


class ScanRNN:
    def __init__(self, config: RNNConfig, detach: bool) -> None:
        self.config, self.detach = config, detach
        self.weights: dict[str, Any] = {}

    def __call__(self, x: Any, hx: Any) -> tuple[Any, Any]:
        config, lstm = self.config, self.config.cell == "lstm"
        if x.ndim not in (2, 3):
            raise ValueError(f"input must be 2-D or 3-D, got {x.ndim}-D")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None] if not config.batch_first else x[None]
        batch = x.shape[0 if config.batch_first else 1]
        rows = config.num_layers * (2 if config.bidirectional else 1)
        shape = (rows, config.hidden_size) if unbatched else (rows, batch, config.hidden_size)
        if hx is None:
            states = (jnp.zeros((rows, batch, config.hidden_size), x.dtype),) * (1 + lstm)
        else:
            states = tuple(hx) if lstm else (hx,)
            if (lstm and not isinstance(hx, tuple)) or any(s.shape != shape for s in states):
                raise ValueError(f"hx must be {1 + lstm} array(s) of shape {shape}")
            states = tuple(s[:, None] for s in states) if unbatched else states
        xs = x.swapaxes(0, 1) if config.batch_first else x
        time_major = config.replace(batch_first=False)
        output, finals = _network(time_major, self.weights, xs, states, self.detach)
        output = output.swapaxes(0, 1) if config.batch_first else output
        if unbatched:
            output = output[0] if config.batch_first else output[:, 0]
            finals = tuple(state[:, 0] for state in finals)
        return output, finals if lstm else finals[0]


def _load(network: ScanRNN, weights: Any) -> None:
    network.weights = dict(weights)


def _implementation(name: str, detach: bool) -> Implementation:
    return Implementation(
        name,
        lambda config, device, dtype: ScanRNN(config, detach),
        Capabilities(
            cells=frozenset({"elman", "elman:relu", "gru", "lstm"}), proj_size=False, dropout=False
        ),
        load_weights=_load,
        call=lambda network, x, hx: network(x, hx),
        framework="jax",
        description="a hand-written jax.lax.scan RNN (rnnspec's own tests)",
    )


implementation = _implementation("jax-scan", detach=False)
detached_bias = _implementation("jax-scan:detached-bias", detach=True)
