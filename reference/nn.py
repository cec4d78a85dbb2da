"""The PyTorch reference: a module with ``torch.nn.RNN``/``GRU``/``LSTM``'s interface.

Parameters carry PyTorch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), input may
be padded, batch_first, unbatched or a ``PackedSequence``, and every cell kind and variant
of the specs is available, on any device and dtype, with autograd.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from reference import compose
from reference.cells import layer_function
from rnnspec import torch_equivalents
from rnnspec.config import RNNConfig, canonical_name


class RNN(nn.Module):
    """A reference network for ``config.cell`` (``"lstm"``, ``"gru:reset_before"``, ...)."""

    def __init__(
        self,
        config: RNNConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.cell = config.resolve()
        self._layer = layer_function(self.cell, "torch")
        bound = 1.0 / math.sqrt(config.hidden_size)
        for name, shape in config.parameter_shapes().items():
            tensor = torch.empty(shape, device=device, dtype=dtype)
            if tensor.device.type != "meta":
                nn.init.uniform_(tensor, -bound, bound)
            self.register_parameter(name, nn.Parameter(tensor))

    # Attributes that mirror torch.nn.RNNBase, so code written for it reads the same.
    @property
    def batch_first(self) -> bool:
        return self.config.batch_first

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def bidirectional(self) -> bool:
        return self.config.bidirectional

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def proj_size(self) -> int:
        return self.config.proj_size

    def extra_repr(self) -> str:
        return self.config.describe()

    def forward(self, input: Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:
        config = self.config
        lengths: Tensor | None = None
        if isinstance(input, PackedSequence):
            x, lengths = pad_packed_sequence(input)
            lengths = lengths.to(x.device)
        else:
            x = input
            if x.dim() not in (2, 3):
                raise ValueError(
                    f"{type(self).__name__}: Expected input to be 2D or 3D, got {x.dim()}D tensor instead"
                )
        packed = lengths is not None
        unbatched = not packed and x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1)
        elif config.batch_first and not packed:
            x = x.transpose(0, 1)
        states = self._initial_states(x, hx, unbatched)
        params = dict(self.named_parameters())
        output, finals = compose.forward_network(
            self._layer,
            compose.TorchOps(),
            x,
            states,
            partial(self._layer_weights, params),
            config.num_layers,
            config.num_directions,
            lengths=lengths,
            between_layers=self._dropout if self.training and config.dropout > 0 else None,
        )
        if lengths is not None:
            result: Any = pack_padded_sequence(output, lengths.cpu(), enforce_sorted=False)
        elif unbatched:
            result = output.squeeze(1)
            finals = tuple(state.squeeze(1) for state in finals)
        else:
            result = output.transpose(0, 1) if config.batch_first else output
        return result, finals[0] if len(finals) == 1 else finals

    def _dropout(self, x: Tensor) -> Tensor:
        return nn.functional.dropout(x, self.config.dropout, training=True)

    def _layer_weights(
        self, params: Mapping[str, Tensor], layer: int, direction: int
    ) -> dict[str, Tensor | None]:
        weights: dict[str, Tensor | None] = {}
        for param in self.cell.parameters:
            name = canonical_name(param.name, layer, direction)
            if name in params:
                weights[param.name] = params[name]
            elif param.bias:
                reference = params[canonical_name("weight_ih", layer, direction)]
                rows = param.shape(self.config.sizes(layer))[0]
                weights[param.name] = reference.new_zeros(rows)
        return weights

    def _initial_states(self, x: Tensor, hx: Any, unbatched: bool) -> list[Tensor]:
        shapes = self.config.state_shapes(self.cell, x.shape[1])
        if hx is None:
            return [x.new_zeros(shape) for shape in shapes]
        names = [state.name for state in self.cell.states]
        if len(shapes) > 1 and not isinstance(hx, tuple | list):
            raise TypeError(
                f"{type(self).__name__}: hx must be a tuple ({', '.join(names)}), got {type(hx).__name__}"
            )
        given = list(hx) if len(shapes) > 1 else [hx]
        if len(given) != len(shapes) or not all(isinstance(state, Tensor) for state in given):
            raise TypeError(
                f"{type(self).__name__}: hx must be {len(shapes)} tensor(s) ({', '.join(names)})"
            )
        if unbatched:
            for name, state in zip(names, given, strict=True):
                if state.dim() != 2:
                    raise RuntimeError(
                        f"For unbatched 2-D input, {name}0 should also be 2-D but got {state.dim()}-D tensor"
                    )
            given = [state.unsqueeze(1) for state in given]
        for name, state, shape in zip(names, given, shapes, strict=True):
            if tuple(state.shape) != shape:
                raise RuntimeError(
                    f"Expected hidden size {shape} for {name}0, got {tuple(state.shape)}"
                )
            if state.device != x.device:
                raise RuntimeError(
                    f"Input and hidden tensors are not at the same device, found input tensor at "
                    f"{x.device} and hidden tensor at {state.device}"
                )
        return given


def from_torch(module: nn.RNNBase, cell: str | None = None) -> RNN:
    """A reference network with the configuration and weights of a ``torch.nn`` RNN."""
    config = RNNConfig(
        cell=cell or torch_equivalents.cell_of(module),
        input_size=module.input_size,
        hidden_size=module.hidden_size,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        bias=module.bias,
        batch_first=module.batch_first,
        proj_size=getattr(module, "proj_size", 0),
        dropout=module.dropout,
    )
    first = next(module.parameters())
    result = RNN(config, device=first.device, dtype=first.dtype)
    result.load_state_dict(module.state_dict())
    return result.train(module.training)
