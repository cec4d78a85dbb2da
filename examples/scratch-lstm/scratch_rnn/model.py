"""An LSTM and a GRU written gate by gate, the way from-scratch tutorials write them.

Every gate has its own input matrix ``W_x*`` of shape (inputs, hiddens), hidden matrix
``W_h*`` of shape (hiddens, hiddens) and bias ``b_*``, applied as ``X @ W_x* + H @ W_h* + b_*``.
Input is (batch, steps, inputs) by default (``batch_first=True``); the state is a list with
one entry per layer and direction: ``(H, C)`` for the LSTM, ``H`` for the GRU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def _gate(
    num_inputs: int, num_hiddens: int, bias: bool, sigma: float
) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter | None]:
    """A gate's input matrix, hidden matrix and bias (None without bias)."""
    return (
        nn.Parameter(torch.randn(num_inputs, num_hiddens) * sigma),
        nn.Parameter(torch.randn(num_hiddens, num_hiddens) * sigma),
        nn.Parameter(torch.zeros(num_hiddens)) if bias else None,
    )


def _plus(value: Tensor, bias: Tensor | None) -> Tensor:
    return value if bias is None else value + bias


class LSTMCell(nn.Module):
    """One LSTM step with the gates i (input), f (forget), o (output) and the candidate c."""

    def __init__(self, num_inputs: int, num_hiddens: int, bias: bool = True, sigma: float = 0.01):
        super().__init__()
        self.num_hiddens, self.bias = num_hiddens, bias
        self.W_xi, self.W_hi, self.b_i = _gate(num_inputs, num_hiddens, bias, sigma)
        self.W_xf, self.W_hf, self.b_f = _gate(num_inputs, num_hiddens, bias, sigma)
        self.W_xo, self.W_ho, self.b_o = _gate(num_inputs, num_hiddens, bias, sigma)
        self.W_xc, self.W_hc, self.b_c = _gate(num_inputs, num_hiddens, bias, sigma)

    def begin_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = like.new_zeros(batch_size, self.num_hiddens)
        return zeros, zeros

    def forward(
        self, X: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        H, C = state
        I = torch.sigmoid(_plus(X @ self.W_xi + H @ self.W_hi, self.b_i))  # noqa: E741
        F = torch.sigmoid(_plus(X @ self.W_xf + H @ self.W_hf, self.b_f))
        O = torch.sigmoid(_plus(X @ self.W_xo + H @ self.W_ho, self.b_o))  # noqa: E741
        C_tilde = torch.tanh(_plus(X @ self.W_xc + H @ self.W_hc, self.b_c))
        C = F * C + I * C_tilde
        H = O * torch.tanh(C)
        return H, (H, C)


class GRUCell(nn.Module):
    """One GRU step with the gates z (update), r (reset) and the candidate h.

    ``reset_after=True`` is PyTorch's form, ``R * (H @ W_hh + b_hh)``, which needs the
    candidate's input and hidden biases apart (``b_xh``, ``b_hh``); ``reset_after=False``
    is Cho et al.'s, ``(R * H) @ W_hh``, with one candidate bias ``b_h``.
    """

    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        bias: bool = True,
        reset_after: bool = True,
        sigma: float = 0.01,
    ):
        super().__init__()
        self.num_hiddens, self.bias, self.reset_after = num_hiddens, bias, reset_after
        self.W_xz, self.W_hz, self.b_z = _gate(num_inputs, num_hiddens, bias, sigma)
        self.W_xr, self.W_hr, self.b_r = _gate(num_inputs, num_hiddens, bias, sigma)
        self.W_xh, self.W_hh, b_h = _gate(num_inputs, num_hiddens, bias, sigma)
        if reset_after:
            self.b_xh, self.b_hh = b_h, nn.Parameter(torch.zeros(num_hiddens)) if bias else None
        else:
            self.b_h = b_h

    def begin_state(self, batch_size: int, like: Tensor) -> Tensor:
        return like.new_zeros(batch_size, self.num_hiddens)

    def forward(self, X: Tensor, H: Tensor) -> tuple[Tensor, Tensor]:
        Z = torch.sigmoid(_plus(X @ self.W_xz + H @ self.W_hz, self.b_z))
        R = torch.sigmoid(_plus(X @ self.W_xr + H @ self.W_hr, self.b_r))
        if self.reset_after:
            H_tilde = torch.tanh(
                _plus(X @ self.W_xh, self.b_xh) + R * _plus(H @ self.W_hh, self.b_hh)
            )
        else:
            H_tilde = torch.tanh(_plus(X @ self.W_xh + (R * H) @ self.W_hh, self.b_h))
        H = Z * H + (1 - Z) * H_tilde
        return H, H


class ScratchRNN(nn.Module):
    """Layers of one cell kind, each optionally run in both directions and concatenated."""

    def __init__(
        self,
        make_cell: Any,
        num_inputs: int,
        num_hiddens: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = True,
    ):
        super().__init__()
        self.num_inputs, self.num_hiddens = num_inputs, num_hiddens
        self.num_layers, self.batch_first = num_layers, batch_first
        self.num_directions = 2 if bidirectional else 1
        self.cells = nn.ModuleList(
            make_cell(num_inputs if layer == 0 else self.num_directions * num_hiddens)
            for layer in range(num_layers)
            for _ in range(self.num_directions)
        )

    def forward(self, X: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        """Outputs shaped like X with ``directions * num_hiddens`` features, and the final
        state of every cell (index ``layer * directions + direction``)."""
        if X.dim() != 3 or X.shape[-1] != self.num_inputs:
            raise ValueError(
                f"expected input of shape (batch, steps, {self.num_inputs}), got {tuple(X.shape)}"
            )
        if self.batch_first:
            X = X.transpose(0, 1)
        batch_size = X.shape[1]
        if state is None:
            state = [cell.begin_state(batch_size, X) for cell in self.cells]
        self._check_state(state, batch_size)
        final = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                cell, cell_state = self.cells[index], state[index]
                steps = X.unbind(0) if direction == 0 else X.flip(0).unbind(0)
                hiddens = []
                for X_t in steps:
                    H, cell_state = cell(X_t, cell_state)
                    hiddens.append(H)
                Y = torch.stack(hiddens)
                outputs.append(Y if direction == 0 else Y.flip(0))
                final.append(cell_state)
            X = torch.cat(outputs, dim=-1)
        return (X.transpose(0, 1) if self.batch_first else X), final

    def _check_state(self, state: list[Any], batch_size: int) -> None:
        if len(state) != len(self.cells):
            raise ValueError(
                f"expected {len(self.cells)} states (layers x directions), got {len(state)}"
            )
        expected = (batch_size, self.num_hiddens)
        for cell_state in state:
            for tensor in self._tensors(cell_state):
                if tuple(tensor.shape) != expected:
                    raise ValueError(
                        f"expected state of shape {expected}, got {tuple(tensor.shape)}"
                    )

    def _tensors(self, cell_state: Any) -> tuple[Tensor, ...]:
        raise NotImplementedError


class ScratchLSTM(ScratchRNN):
    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bias: bool = True,
        batch_first: bool = True,
    ):
        super().__init__(
            lambda inputs: LSTMCell(inputs, num_hiddens, bias),
            num_inputs,
            num_hiddens,
            num_layers,
            bidirectional,
            batch_first,
        )

    def _tensors(self, cell_state: Any) -> tuple[Tensor, ...]:
        if not isinstance(cell_state, tuple) or len(cell_state) != 2:
            raise TypeError(f"an LSTM state is a tuple (H, C), got {type(cell_state).__name__}")
        return cell_state


class ScratchGRU(ScratchRNN):
    def __init__(
        self,
        num_inputs: int,
        num_hiddens: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bias: bool = True,
        batch_first: bool = True,
        reset_after: bool = True,
    ):
        super().__init__(
            lambda inputs: GRUCell(inputs, num_hiddens, bias, reset_after),
            num_inputs,
            num_hiddens,
            num_layers,
            bidirectional,
            batch_first,
        )

    def _tensors(self, cell_state: Any) -> tuple[Tensor, ...]:
        if not isinstance(cell_state, Tensor):
            raise TypeError(f"a GRU state is a tensor H, got {type(cell_state).__name__}")
        return (cell_state,)
