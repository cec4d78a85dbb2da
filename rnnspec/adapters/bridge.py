"""torch.nn's call convention around a network that runs on padded arrays.

The built-in adapters for other runtimes implement ``run(x, states, lengths)``: ``x``
padded (time-major, or batch-first when the config says so), ``states`` a tuple of stacked
(L·D, B, size) arrays or None, ``lengths`` a list or None; it returns ``(output, states)``
in the same layout. :func:`call` turns the kit's torch arguments (a tensor or a
PackedSequence, hx as torch.nn takes it) into that and back, and rejects what torch.nn
rejects: input that is not 2-D or 3-D, states of the wrong number or shape.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from rnnspec.config import RNNConfig
from rnnspec.harness import as_hx, as_states


class PaddedNetwork(Protocol):
    config: RNNConfig
    numpy_dtype: Any  # the NumPy dtype it computes in; None to hand torch tensors through

    def run(
        self, x: Any, states: tuple[Any, ...] | None, lengths: list[int] | None
    ) -> tuple[Any, tuple[Any, ...]]: ...


def call(network: PaddedNetwork, x: Any, hx: Any) -> tuple[Any, Any]:
    """``network`` called like ``torch.nn.LSTM(x, hx)``: returns ``(output, h_n)`` or
    ``(output, (h_n, c_n))``, output packed when ``x`` is."""
    import torch
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

    config = network.config
    lengths = None
    if isinstance(x, PackedSequence):
        x, found = pad_packed_sequence(x, batch_first=config.batch_first)
        lengths = [int(length) for length in found]
    if x.dim() not in (2, 3):
        raise ValueError(f"input must be 2-D (unbatched) or 3-D, got shape {tuple(x.shape)}")
    unbatched = x.dim() == 2
    batch_axis = 0 if config.batch_first else 1
    if unbatched:
        x = x.unsqueeze(batch_axis)
    states = _checked_states(config, as_states(hx), x.shape[batch_axis], unbatched)
    dtype, device = x.dtype, x.device
    if network.numpy_dtype is not None:
        x = x.detach().cpu().numpy().astype(network.numpy_dtype)
        states = tuple(s.detach().cpu().numpy().astype(network.numpy_dtype) for s in states)
    output, final = network.run(x, states or None, lengths)
    if network.numpy_dtype is not None:
        output = torch.as_tensor(np.array(output)).to(device, dtype)
        final = tuple(torch.as_tensor(np.array(s)).to(device, dtype) for s in final)
    if unbatched:
        output = output.squeeze(batch_axis)
        final = tuple(state.squeeze(1) for state in final)
    if lengths is not None:
        output = pack_padded_sequence(
            output, lengths, batch_first=config.batch_first, enforce_sorted=False
        )
    return output, as_hx(final)


def _checked_states(
    config: RNNConfig, states: tuple[Any, ...], batch: int, unbatched: bool
) -> tuple[Any, ...]:
    """The given states, batched; an error names a wrong number, type or shape."""
    if not states:
        return ()
    cell = config.resolve()
    names = [state.name + "0" for state in cell.states]
    if len(states) != len(names):
        raise ValueError(f"hx must be ({', '.join(names)}): got {len(states)} tensors")
    shapes = config.state_shapes(cell, None if unbatched else batch)
    checked = []
    for name, state, shape in zip(names, states, shapes, strict=True):
        if not hasattr(state, "shape") or tuple(state.shape) != tuple(shape):
            got = tuple(state.shape) if hasattr(state, "shape") else type(state).__name__
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {got}")
        checked.append(state.unsqueeze(1) if unbatched else state)
    return tuple(checked)
