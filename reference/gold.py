"""The NumPy reference: the float64 gold standard every candidate is judged against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reference import compose
from reference.cells import layer_function
from rnnspec.config import RNNConfig, canonical_name

StateOut = Any  # h_n, or a tuple (h_n, c_n) for cells with several states


def forward(
    config: RNNConfig,
    weights: Mapping[str, np.ndarray],
    x: np.ndarray,
    hx: np.ndarray | Sequence[np.ndarray] | None = None,
    lengths: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, StateOut]:
    """Run the network like ``torch.nn`` would, in the dtype of ``x`` (float64 for gold).

    ``x`` is (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I); ``lengths``
    gives each sequence's length for padded variable-length input (positions past a
    length are output as zeros). Returns ``(output, h_n)`` or ``(output, (h_n, c_n))``.
    Dropout is not applied (evaluation mode).
    """
    cell = config.resolve()
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None]
    elif config.batch_first:
        x = x.swapaxes(0, 1)
    batch = x.shape[1]
    states = _initial_states(config, cell, hx, batch, unbatched, x.dtype)
    zero_bias = {}
    if not config.bias:
        zero_bias = {
            p.name: np.zeros(p.shape(config.sizes(0))[0], x.dtype)
            for p in cell.parameters
            if p.bias
        }

    def layer_weights(layer: int, direction: int) -> dict[str, Any]:
        active = cell.active_parameters(bias=config.bias, proj=config.proj_size > 0)
        found = {p.name: weights[canonical_name(p.name, layer, direction)] for p in active}
        return {**zero_bias, **found}

    output, finals = compose.forward_network(
        layer_function(cell, "numpy"),
        compose.NumpyOps(),
        x,
        states,
        layer_weights,
        config.num_layers,
        config.num_directions,
        lengths=None if lengths is None else np.asarray(lengths),
    )
    if unbatched:
        output, finals = output[:, 0], tuple(state[:, 0] for state in finals)
    elif config.batch_first:
        output = output.swapaxes(0, 1)
    return output, finals[0] if len(finals) == 1 else finals


def _initial_states(
    config: RNNConfig, cell: Any, hx: Any, batch: int, unbatched: bool, dtype: Any
) -> list[np.ndarray]:
    shapes = config.state_shapes(cell, batch)
    if hx is None:
        return [np.zeros(shape, dtype) for shape in shapes]
    given = [hx] if isinstance(hx, np.ndarray) else list(hx)
    if unbatched:
        given = [state[:, None] for state in given]
    for state, shape in zip(given, shapes, strict=True):
        if state.shape != shape:
            raise ValueError(f"initial state has shape {state.shape}, expected {shape}")
    return given
