"""Registers the scratch networks with rnnspec: the adapter between their layout and the canonical one.

rnnspec hands over PyTorch's weights (``weight_ih_l0`` of shape (gates * H, I), gates stacked
LSTM (i, f, g, o), GRU (r, z, n), two biases ``bias_ih``/``bias_hh``) and expects
``(output, h_n)`` or ``(output, (h_n, c_n))`` with states stacked as (layers * directions,
batch, H). The scratch networks keep one (I, H) matrix per gate, one bias per gate where two
biases always add up (the GRU candidate under ``reset_after`` keeps both), and a list of
per-cell states. The functions below translate; ``pyproject.toml`` names the entry points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import torch

from rnnspec.config import RNNConfig
from rnnspec.protocol import Capabilities, Implementation
from scratch_rnn.model import GRUCell, ScratchGRU, ScratchLSTM, ScratchRNN

# The scratch gate that receives each canonical block, in PyTorch's stacking order.
LSTM_GATES = ("i", "f", "c", "o")  # canonical (i, f, g, o)
GRU_GATES = ("r", "z", "h")  # canonical (r, z, n)
# The planted bug: blocks read as if PyTorch stacked (i, g, f, o), so f and g trade weights.
BUGGY_LSTM_GATES = ("i", "c", "f", "o")

CAPABILITIES = Capabilities(
    cells=frozenset({"lstm", "gru", "gru:reset_before"}),
    proj_size=False,
    packed=False,
    unbatched=False,
    dropout=False,
)


def build(config: RNNConfig, device: Any, dtype: Any) -> ScratchRNN:
    kind, _, variant = config.cell.partition(":")
    sizes = dict(
        num_inputs=config.input_size,
        num_hiddens=config.hidden_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        bias=config.bias,
        batch_first=config.batch_first,
    )
    if kind == "lstm":
        net: ScratchRNN = ScratchLSTM(**sizes)
    else:
        net = ScratchGRU(**sizes, reset_after=variant != "reset_before")
    return net.to(device=device, dtype=dtype)


def _gates(net: ScratchRNN, lstm_gates: Sequence[str]) -> Sequence[str]:
    return lstm_gates if isinstance(net, ScratchLSTM) else GRU_GATES


def _bias_names(cell: Any, gate: str) -> tuple[str, str]:
    """The scratch biases that the canonical input and hidden bias of ``gate`` feed."""
    if isinstance(cell, GRUCell) and gate == "h":
        return ("b_xh", "b_hh") if cell.reset_after else ("b_h", "b_h")
    return f"b_{gate}", f"b_{gate}"


def _suffix(net: ScratchRNN, index: int) -> str:
    layer, direction = divmod(index, net.num_directions)
    return f"_l{layer}" + ("_reverse" if direction else "")


def load_weights(
    net: ScratchRNN, weights: Mapping[str, torch.Tensor], lstm_gates: Sequence[str] = LSTM_GATES
) -> None:
    """Copy canonical weights into the per-gate parameters; paired biases are summed."""
    gates = _gates(net, lstm_gates)
    with torch.no_grad():
        for index, cell in enumerate(net.cells):
            suffix = _suffix(net, index)
            blocks_ih = weights["weight_ih" + suffix].chunk(len(gates))
            blocks_hh = weights["weight_hh" + suffix].chunk(len(gates))
            for gate, block_ih, block_hh in zip(gates, blocks_ih, blocks_hh, strict=True):
                getattr(cell, f"W_x{gate}").copy_(block_ih.T)
                getattr(cell, f"W_h{gate}").copy_(block_hh.T)
            if not cell.bias:
                continue
            biases_ih = weights["bias_ih" + suffix].chunk(len(gates))
            biases_hh = weights["bias_hh" + suffix].chunk(len(gates))
            for gate, bias_ih, bias_hh in zip(gates, biases_ih, biases_hh, strict=True):
                name_ih, name_hh = _bias_names(cell, gate)
                getattr(cell, name_ih).copy_(bias_ih)
                if name_hh == name_ih:
                    getattr(cell, name_hh).add_(bias_hh)
                else:
                    getattr(cell, name_hh).copy_(bias_hh)


def gradients(
    net: ScratchRNN, lstm_gates: Sequence[str] = LSTM_GATES
) -> dict[str, torch.Tensor | None]:
    """Weight gradients under canonical names; a summed bias gives its gradient to both."""
    gates = _gates(net, lstm_gates)
    found: dict[str, torch.Tensor | None] = {}
    for index, cell in enumerate(net.cells):
        suffix = _suffix(net, index)

        def grad(name: str, cell: Any = cell) -> torch.Tensor:
            return getattr(cell, name).grad

        found["weight_ih" + suffix] = torch.cat([grad(f"W_x{gate}").T for gate in gates])
        found["weight_hh" + suffix] = torch.cat([grad(f"W_h{gate}").T for gate in gates])
        if cell.bias:
            names = [_bias_names(cell, gate) for gate in gates]
            found["bias_ih" + suffix] = torch.cat([grad(name_ih) for name_ih, _ in names])
            found["bias_hh" + suffix] = torch.cat([grad(name_hh) for _, name_hh in names])
    return found


def call(net: ScratchRNN, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, Any]:
    """Canonical stacked states in, the scratch per-cell list through, stacked states out."""
    lstm = isinstance(net, ScratchLSTM)
    state = None
    if hx is not None:
        if lstm and not (isinstance(hx, tuple) and len(hx) == 2):
            raise TypeError(f"an LSTM takes hx=(h_0, c_0), got {type(hx).__name__}")
        if not lstm and not isinstance(hx, torch.Tensor):
            raise TypeError(f"a GRU takes hx=h_0, a tensor, got {type(hx).__name__}")
        state = list(zip(*(s.unbind(0) for s in hx), strict=True)) if lstm else list(hx.unbind(0))
    output, final = net(x, state)
    if lstm:
        return output, (torch.stack([h for h, _ in final]), torch.stack([c for _, c in final]))
    return output, torch.stack(final)


def implementation() -> Implementation:
    return Implementation(
        "scratch-lstm",
        build,
        CAPABILITIES,
        load_weights=load_weights,
        gradients=gradients,
        call=call,
        description="examples/scratch-lstm: a from-scratch LSTM and GRU, one matrix per gate",
    )


def buggy_implementation() -> Implementation:
    """The same LSTM with the gate-order bug planted in its loader (and gradients)."""
    return Implementation(
        "scratch-lstm-buggy",
        build,
        replace(CAPABILITIES, cells=frozenset({"lstm"})),
        load_weights=partial(load_weights, lstm_gates=BUGGY_LSTM_GATES),
        gradients=partial(gradients, lstm_gates=BUGGY_LSTM_GATES),
        call=call,
        description="examples/scratch-lstm with a planted bug: LSTM blocks read as (i, g, f, o)",
    )
