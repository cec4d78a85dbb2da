"""A from-scratch RNN written like the seed notebooks: one explicit loop over steps and gates.

Correct by default (``torch.nn``'s call convention and parameter names, so the default
loader works); each field of :class:`Bugs` switches on one named bug from
``docs/failure-modes.md``. ``correct`` is the implementation with no bug switched on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnspec.config import RNNConfig, canonical_name
from rnnspec.protocol import ALL_TRANSFORMS, Capabilities, Implementation

CELLS = frozenset({"elman", "elman:relu", "gru", "gru:reset_before", "lstm"})
TRANSFORMS = ALL_TRANSFORMS - {"script"}  # its Bugs and Any-typed code are not TorchScript
GATES = {"elman": ("h",), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}


@dataclass(frozen=True)
class Bugs:
    """Bug switches; the defaults compute exactly what ``torch.nn`` computes."""

    gate_order: tuple[str, ...] | None = None  # weight blocks read in this order
    reset_before: bool = False  # GRU: r * h before the hidden matmul
    reset_after: bool = False  # GRU: r after the hidden matmul, gru:reset_before declared too
    biases_folded: bool = False  # GRU: b_hn added outside the reset gate
    missing_b_hn: bool = False  # GRU: no b_hn (b_hr, b_hz kept), as flax.nnx GRUCell
    no_bias_ih: bool = False
    no_bias_hh: bool = False
    forget_bias: float = 0.0  # added to the forget gate's pre-activation
    candidate: str = "tanh"  # "identity" or "relu" on the candidate / Elman recurrence
    recurrent: str = "sigmoid"  # "hard_sigmoid" on the gates
    interpolation_swapped: bool = False  # GRU: h' = z * n + (1 - z) * h
    transposed_hh: bool = False  # each square weight_hh block used transposed
    hn_direction_major: bool = False  # h_n[direction * L + layer]
    batch_first_states: bool = False  # batch_first applied to h_n as well
    reverse_over_padding: bool = False  # reverse direction starts on the pad tokens
    reverse_not_realigned: bool = False  # reverse outputs left in processing order
    squeeze: bool = False  # .squeeze() the batch dimension (gone at B = 1)
    zero_state: str = "like_input"  # "default_device", "cuda_if_available", "attribute", "float32"
    mutate_input: bool = False  # batch_first input transposed in place (transpose_)
    dropout_after_last: bool = False
    dropout_ignored: bool = False
    noise: bool = False  # non-deterministic rounding-size noise on the output
    state_as_list: bool = False  # returns [h_n, c_n] but accepts only a tuple
    packed_ignored: bool = False  # runs padded steps as data
    detached_bias: bool = False  # bias_ih enters the graph detached
    unbatched_as_batch: bool = False  # 2-D input unsqueezed on the wrong dimension
    log_space_forget: bool = False  # f * c as exp(log f + log c): NaN wherever c < 0
    relu_as_tanh: bool = False  # elman:relu computes tanh
    tanh_read_out: bool = False  # linear recurrence, tanh on the output only (seed 000)
    hx_ignored: bool = False  # a given hx is checked, then zeros are used
    h0_direction_major: bool = False  # h0[direction * L + layer]
    layers_fed_swapped: bool = False  # layers above the first get cat(reverse, forward)
    directions_swapped: bool = False  # every concatenation cat(reverse, forward)
    h0_first_layer_only: bool = False  # layers above the first start from zeros
    states_swapped: bool = False  # returns (c_n, h_n)
    hn_from_last_step: bool = False  # h_n of the last layer = output[-1]
    stateful: bool = False  # without hx, starts from the previous call's final states
    float32_compute: bool = False  # computes in float32 whatever the input's dtype
    compiled_extra_dim: bool = False  # under torch.compile, h_n (c_n) gain a leading dimension
    nan_guard: bool = False  # raises on NaN input: a data-dependent branch export cannot trace
    preallocated_output: bool = False  # steps written into a torch.zeros buffer, in place
    cached_weights: bool = False  # weights copied on the first call and reused after
    custom_tanh: str = (
        ""  # "no_jvp": autograd.Function without jvp; "detached": backward on y.detach()
    )
    autocast_half: bool = False  # under autocast, output and states cast to float16
    raw_strides: bool = False  # input and hx read as if contiguous, whatever their strides
    skip_first_hidden: bool = False  # hx=None: the first step skips the hidden product, b_hh too
    squeeze_unpacked: bool = False  # the unpacked input is .squeeze()d (T = 1 vanishes)
    keras_masking: bool = False  # past a length: the last h, not 0, packed with every length T
    batch_standardized: bool = False  # the input minus its mean over the batch
    numpy_dropout: bool = False  # dropout masks from NumPy's global generator
    state_reset_every: int = 0  # the step loop restarts from h0 every this many steps
    weights_by_shape: bool = False  # W_ih and W_hh looked up by shape: one when I == H


class TanhWithoutJvp(torch.autograd.Function):
    """tanh with a hand-written backward and no forward-mode formula."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class TanhDetachedBackward(TanhWithoutJvp):
    """tanh whose backward uses y detached: first derivatives right, second ones not."""

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        y = y.detach()
        return grad * (1 - y * y)


CUSTOM_TANH = {"no_jvp": TanhWithoutJvp, "detached": TanhDetachedBackward}


def contiguous_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def read_as_contiguous(tensor: Tensor) -> Tensor:
    """The tensor's memory read as if it were contiguous: what a raw kernel does."""
    return tensor.as_strided(tensor.shape, contiguous_strides(tensor.shape))


def hard_sigmoid(x: Tensor) -> Tensor:
    """Old Keras' piecewise-linear sigmoid."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


class ScratchRNN(nn.Module):
    """An Elman, GRU or LSTM network with ``torch.nn``'s interface, one step at a time."""

    def __init__(
        self,
        config: RNNConfig,
        device: Any = None,
        dtype: Any = None,
        bugs: Bugs = Bugs(),
    ) -> None:
        super().__init__()
        if config.cell not in CELLS:
            raise ValueError(f"ScratchRNN computes {sorted(CELLS)}, not {config.cell}")
        self.config, self.bugs = config, bugs
        self.kind = config.kind
        self.carried: list[Tensor] | None = None  # the last call's final states (stateful)
        self.gates = bugs.gate_order or GATES[self.kind]
        bound = 1.0 / math.sqrt(config.hidden_size)
        for name, shape in config.parameter_shapes().items():
            weight = torch.empty(shape, device=device, dtype=dtype).uniform_(-bound, bound)
            self.register_parameter(name, nn.Parameter(weight))
        if bugs.zero_state == "attribute":
            shapes = config.state_shapes(config.resolve(), 1)
            self.initial = [torch.zeros(shape, device=device, dtype=dtype) for shape in shapes]
        self.cache: dict[tuple[int, int], dict[str, Tensor | None]] = {}

    def forward(self, input: Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:
        config, bugs = self.config, self.bugs
        lengths = None
        if bugs.raw_strides and isinstance(input, Tensor):
            input = read_as_contiguous(input)
            hx = read_as_contiguous(hx) if isinstance(hx, Tensor) else hx
            hx = tuple(map(read_as_contiguous, hx)) if isinstance(hx, tuple) else hx
        if bugs.nan_guard and isinstance(input, Tensor) and bool(torch.isnan(input).any()):
            raise ValueError("input contains NaN")
        if isinstance(input, PackedSequence):
            x, lengths = pad_packed_sequence(input)
            x = x.squeeze() if bugs.squeeze_unpacked else x
        elif input.dim() not in (2, 3):
            raise ValueError(f"expected 2-D or 3-D input, got {input.dim()}-D")
        elif input.dim() == 2:
            x = input.unsqueeze(0 if bugs.unbatched_as_batch else 1)
        elif config.batch_first:
            x = input.transpose_(0, 1) if bugs.mutate_input else input.transpose(0, 1)
        else:
            x = input
        unbatched = lengths is None and input.dim() == 2
        if bugs.batch_standardized:
            x = x - x.mean(dim=1, keepdim=True)
        states = self.initial_states(x, hx, unbatched)
        dtype = x.dtype
        if bugs.float32_compute:
            x, states = x.float(), [state.float() for state in states]
        skip_first = bugs.skip_first_hidden and hx is None
        masks = None
        if lengths is not None and not bugs.packed_ignored:
            steps = torch.arange(x.shape[0], device=x.device)
            masks = (steps[:, None] < lengths.to(x.device)[None, :])[..., None]

        directions, layers = config.num_directions, config.num_layers
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = x
        for layer in range(layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                if bugs.h0_direction_major:
                    index = direction * layers + layer
                start = tuple(state[index] for state in states)
                if bugs.h0_first_layer_only and layer > 0:
                    start = tuple(torch.zeros_like(state) for state in start)
                output, final = self.run_direction(
                    layer_input, start, layer, direction, masks, skip_first
                )
                outputs.append(output)
                for kept, value in zip(finals, final, strict=True):
                    kept.append(value)
            last = layer == layers - 1
            swapped = bugs.directions_swapped or (bugs.layers_fed_swapped and not last)
            layer_input = torch.cat(outputs[::-1] if swapped else outputs, dim=-1)
            dropping = self.training and config.dropout > 0 and not bugs.dropout_ignored
            if dropping and (not last or bugs.dropout_after_last):
                layer_input = self.dropout(layer_input)
        if bugs.noise:
            eps = torch.finfo(layer_input.dtype).eps
            layer_input = layer_input + (torch.rand_like(layer_input) - 0.5) * eps
        if bugs.hn_from_last_step:
            size = config.output_size
            for direction in range(directions):
                part = layer_input[-1, :, direction * size : (direction + 1) * size]
                finals[0][(layers - 1) * directions + direction] = part
        if bugs.tanh_read_out:
            layer_input = torch.tanh(layer_input)
        stacked = [torch.stack(self.order_states(kept)) for kept in finals]
        if bugs.stateful:
            self.carried = [state.detach() for state in stacked]
        if bugs.float32_compute:
            layer_input, stacked = layer_input.to(dtype), [s.to(dtype) for s in stacked]
        return self.finish(layer_input, stacked, lengths, unbatched)

    def dropout(self, x: Tensor) -> Tensor:
        if not self.bugs.numpy_dropout:
            return F.dropout(x, self.config.dropout, training=True)
        kept = np.random.rand(*x.shape) >= self.config.dropout
        mask = torch.as_tensor(kept, dtype=x.dtype, device=x.device)
        return x * mask / (1 - self.config.dropout)

    def order_states(self, finals: list[Tensor]) -> list[Tensor]:
        """Final states in layer-major, direction-minor order (or the bug's order)."""
        if not self.bugs.hn_direction_major:
            return finals
        directions = self.config.num_directions
        return [
            finals[index] for d in range(directions) for index in range(d, len(finals), directions)
        ]

    def finish(
        self, output: Tensor, states: list[Tensor], lengths: Tensor | None, unbatched: bool
    ) -> tuple[Any, Any]:
        config, bugs = self.config, self.bugs
        if bugs.compiled_extra_dim and torch.compiler.is_compiling():
            states = [state.unsqueeze(0) for state in states]
        if bugs.autocast_half and torch.is_autocast_enabled(output.device.type):
            output, states = output.half(), [state.half() for state in states]
        if lengths is not None:
            if bugs.keras_masking:
                lengths = torch.full_like(lengths, output.shape[0])
            result: Any = pack_padded_sequence(output, lengths, enforce_sorted=False)
        elif unbatched:
            result = output.squeeze(0 if bugs.unbatched_as_batch else 1)
            states = [state.squeeze(1) for state in states]
        else:
            result = output.transpose(0, 1) if config.batch_first else output
            if bugs.squeeze:
                result = result.squeeze(0 if config.batch_first else 1)
                states = [state.squeeze(1) for state in states]
            if bugs.batch_first_states and config.batch_first:
                states = [state.transpose(0, 1) for state in states]
        if len(states) == 1:
            return result, states[0]
        if bugs.states_swapped:
            states = states[::-1]
        return result, list(states) if bugs.state_as_list else tuple(states)

    def initial_states(self, x: Tensor, hx: Any, unbatched: bool) -> list[Tensor]:
        """Given states checked against the input, or zeros like it."""
        shapes = self.config.state_shapes(self.config.resolve(), x.shape[1])
        if hx is None and self.bugs.zero_state == "attribute":
            return [state.expand(-1, x.shape[1], -1) for state in self.initial]
        if hx is None and self.carried is not None:
            return list(self.carried)
        if hx is None:
            return [self.zeros(shape, x) for shape in shapes]
        accepted = tuple if self.bugs.state_as_list else (tuple, list)
        if len(shapes) > 1 and not isinstance(hx, accepted):
            raise TypeError(f"hx must be a tuple of {len(shapes)} tensors, got {type(hx).__name__}")
        given = list(hx) if len(shapes) > 1 else [hx]
        if len(given) != len(shapes) or not all(isinstance(s, Tensor) for s in given):
            raise TypeError(f"hx must be {len(shapes)} tensor(s)")
        if unbatched:
            if any(state.dim() != 2 for state in given):
                raise RuntimeError("unbatched input needs 2-D states")
            given = [state.unsqueeze(1) for state in given]
        for state, shape in zip(given, shapes, strict=True):
            if tuple(state.shape) != shape:
                raise RuntimeError(f"expected state of shape {shape}, got {tuple(state.shape)}")
            if state.device != x.device:
                raise RuntimeError(f"state on {state.device}, input on {x.device}")
        if self.bugs.hx_ignored:
            return [torch.zeros_like(state) for state in given]
        return given

    def zeros(self, shape: tuple[int, ...], x: Tensor) -> Tensor:
        how = self.bugs.zero_state
        if how == "default_device":
            return torch.zeros(shape, dtype=x.dtype)
        if how == "cuda_if_available":
            device = "cuda" if torch.cuda.is_available() else "cpu"
            return torch.zeros(shape, dtype=x.dtype, device=device)
        if how == "float32":
            return torch.zeros(shape, dtype=torch.float32, device=x.device)
        return x.new_zeros(shape)

    def weights(self, layer: int, direction: int) -> dict[str, Tensor | None]:
        if self.bugs.cached_weights:
            if (layer, direction) not in self.cache:
                found = self.read_weights(layer, direction)
                copies = {k: None if v is None else v.clone() for k, v in found.items()}
                self.cache[layer, direction] = copies
            return self.cache[layer, direction]
        return self.read_weights(layer, direction)

    def read_weights(self, layer: int, direction: int) -> dict[str, Tensor | None]:
        params = dict(self.named_parameters())
        found = {
            name: params.get(canonical_name(name, layer, direction))
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        }
        if self.bugs.no_bias_ih:
            found["bias_ih"] = None
        if self.bugs.no_bias_hh:
            found["bias_hh"] = None
        if self.bugs.detached_bias and found["bias_ih"] is not None:
            found["bias_ih"] = found["bias_ih"].detach()
        if self.bugs.float32_compute:
            found = {name: None if w is None else w.float() for name, w in found.items()}
        if self.bugs.weights_by_shape:
            by_shape = {tuple(w.shape): w for w in (found["weight_ih"], found["weight_hh"])}
            found["weight_ih"] = by_shape[tuple(found["weight_ih"].shape)]
        if self.bugs.transposed_hh:
            blocks = found["weight_hh"].unflatten(0, (len(self.gates), -1))
            found["weight_hh"] = blocks.transpose(1, 2).flatten(0, 1)
        return found

    def run_direction(
        self,
        x: Tensor,
        state: tuple[Tensor, ...],
        layer: int,
        direction: int,
        masks: Tensor | None,
        skip_first: bool = False,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One layer in one direction: the step loop, with padded steps left untouched."""
        bugs = self.bugs
        w = self.weights(layer, direction)
        reverse = direction == 1
        if reverse and bugs.reverse_over_padding:
            masks = None
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        outputs: list[Tensor] = []
        start = state
        for count, t in enumerate(steps):
            if bugs.state_reset_every and count and count % bugs.state_reset_every == 0:
                state = start
            hidden_bias = not (skip_first and count == 0)
            new = self.step(x[t], state, w, hidden_bias)
            if masks is not None:
                new = tuple(torch.where(masks[t], n, s) for n, s in zip(new, state, strict=True))
                outputs.append(new[0] if bugs.keras_masking else torch.where(masks[t], new[0], 0.0))
            else:
                outputs.append(new[0])
            state = new
        if reverse and not bugs.reverse_not_realigned:
            outputs.reverse()
        if bugs.preallocated_output:
            stacked = torch.zeros((len(outputs), *outputs[0].shape), dtype=x.dtype, device=x.device)
            for t, value in enumerate(outputs):
                stacked[t] = value
            return stacked, state
        return torch.stack(outputs), state

    def split(self, tensor: Tensor, dim: int = -1) -> dict[str, Tensor]:
        """The gate blocks of a stacked tensor, named in the order this module reads them."""
        return dict(zip(self.gates, tensor.chunk(len(self.gates), dim), strict=True))

    def step(
        self,
        x: Tensor,
        state: tuple[Tensor, ...],
        w: dict[str, Tensor | None],
        hidden_bias: bool = True,
    ) -> tuple[Tensor, ...]:
        """One time step of the cell, gate by gate."""
        bugs = self.bugs
        h = state[0]
        gi = self.split(F.linear(x, w["weight_ih"], w["bias_ih"]))
        gh = self.split(F.linear(h, w["weight_hh"], w["bias_hh"] if hidden_bias else None))
        if self.kind == "elman":
            relu = self.config.cell == "elman:relu" and not bugs.relu_as_tanh
            act = torch.relu if relu else self.candidate
            return (act(gi["h"] + gh["h"]),)
        if self.kind == "gru":
            r = self.sigmoid(gi["r"] + gh["r"])
            z = self.sigmoid(gi["z"] + gh["z"])
            before = self.config.cell == "gru:reset_before" or bugs.reset_before
            if before and not bugs.reset_after:
                bias_hn = None if w["bias_hh"] is None else self.split(w["bias_hh"])["n"]
                hidden_n = F.linear(r * h, self.split(w["weight_hh"], 0)["n"], bias_hn)
                n = self.candidate(gi["n"] + hidden_n)
            elif bugs.biases_folded and w["bias_hh"] is not None:
                bias_hn = self.split(w["bias_hh"])["n"]
                n = self.candidate(gi["n"] + bias_hn + r * (gh["n"] - bias_hn))
            elif bugs.missing_b_hn and w["bias_hh"] is not None:
                n = self.candidate(gi["n"] + r * (gh["n"] - self.split(w["bias_hh"])["n"]))
            else:
                n = self.candidate(gi["n"] + r * gh["n"])
            if bugs.interpolation_swapped:
                return (z * n + (1 - z) * h,)
            return ((1 - z) * n + z * h,)
        c = state[1]
        i = self.sigmoid(gi["i"] + gh["i"])
        f = self.sigmoid(gi["f"] + gh["f"] + bugs.forget_bias)
        g = self.candidate(gi["g"] + gh["g"])
        o = self.sigmoid(gi["o"] + gh["o"])
        kept = torch.exp(torch.log(f) + torch.log(c)) if bugs.log_space_forget else f * c
        c = kept + i * g
        h = o * torch.tanh(c)
        if w["weight_hr"] is not None:
            h = F.linear(h, w["weight_hr"])
        return h, c

    def sigmoid(self, x: Tensor) -> Tensor:
        return hard_sigmoid(x) if self.bugs.recurrent == "hard_sigmoid" else torch.sigmoid(x)

    def candidate(self, x: Tensor) -> Tensor:
        if self.bugs.custom_tanh:
            return CUSTOM_TANH[self.bugs.custom_tanh].apply(x)
        if self.bugs.candidate == "identity" or self.bugs.tanh_read_out:
            return x
        if self.bugs.candidate == "relu":
            return torch.relu(x)
        return torch.tanh(x)


def implementation(
    name: str = "scratch",
    bugs: Bugs = Bugs(),
    moved: bool = False,
    **capabilities: Any,
) -> Implementation:
    """The scratch module as a candidate; ``moved`` builds it on the default device first."""

    def factory(config: RNNConfig, device: Any, dtype: Any) -> ScratchRNN:
        if moved:
            return ScratchRNN(config, dtype=dtype, bugs=bugs).to(device)
        return ScratchRNN(config, device=device, dtype=dtype, bugs=bugs)

    capabilities.setdefault("transforms", TRANSFORMS)
    return Implementation(
        name,
        factory,
        Capabilities(cells=capabilities.pop("cells", CELLS), **capabilities),
        description="tests/zoo/scratch.py: a step-by-step loop over gates",
    )


correct = implementation()


def projection_skipped(name: str) -> Implementation:
    """An LSTM that ignores ``proj_size``: built without W_hr, h and output are H wide.

    Its loader drops ``weight_hr`` and pads ``weight_hh`` (4H, P) with zero columns to (4H, H).
    """

    def factory(config: RNNConfig, device: Any, dtype: Any) -> ScratchRNN:
        return ScratchRNN(config.replace(proj_size=0), device=device, dtype=dtype)

    def load_weights(module: ScratchRNN, weights: Mapping[str, Tensor]) -> None:
        with torch.no_grad():
            for param_name, param in module.named_parameters():
                value = weights[param_name]
                param.zero_()
                param[..., : value.shape[-1]].copy_(value)

    return Implementation(name, factory, Capabilities(cells=frozenset({"lstm"})), load_weights)
