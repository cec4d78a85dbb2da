"""The zoo: deliberately broken RNN implementations, one named bug each (docs/failure-modes.md).

Each entry is :mod:`tests.zoo.scratch` with one bug switched on, the check category that
must catch it, and the name the diagnosis should give it (None when the bug lies outside
the diagnosis library, ``rnnspec/specs/hypotheses.toml``). Capabilities are declared
honestly for what each entry can run, so the category's checks reach the bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnnspec import checks
from rnnspec.protocol import Implementation
from tests.zoo.scratch import Bugs, implementation, projection_skipped

# Every category but speed: its checks time the candidate, and tests assert no wall-clock times.
CATEGORIES = tuple(category for category in checks.CATEGORIES if category != "speed")


@dataclass(frozen=True)
class ZooEntry:
    name: str
    bug: str
    implementation: Implementation
    catches: str
    hypothesis: str | None
    failure: str = "mismatch"  # the CheckFailure category it must fail with

    def __post_init__(self) -> None:
        if self.catches not in CATEGORIES:
            raise ValueError(f"{self.name}: unknown category {self.catches!r}")


def _entry(
    name: str,
    bug: str,
    catches: str,
    hypothesis: str | None,
    cells: set[str],
    bugs: Bugs,
    failure: str = "mismatch",
    **capabilities: Any,
) -> ZooEntry:
    """The scratch module with ``bugs`` switched on, declaring ``cells``."""
    candidate = implementation(f"zoo:{name}", bugs, cells=frozenset(cells), **capabilities)
    return ZooEntry(name, bug, candidate, catches, hypothesis, failure)


ENTRIES = [
    _entry(
        "lstm_gate_order_igfo",
        "The LSTM reads its stacked weight blocks as (i, g, f, o) instead of (i, f, g, o).",
        "parity",
        "gate_permutation:i,g,f,o",
        {"lstm"},
        Bugs(gate_order=("i", "g", "f", "o")),
    ),
    _entry(
        "gru_gate_order_zrn",
        "The GRU reads its stacked weight blocks in Keras/ONNX order (z, r, n).",
        "parity",
        "gate_permutation:z,r,n",
        {"gru"},
        Bugs(gate_order=("z", "r", "n")),
    ),
    _entry(
        "gru_reset_before",
        "The GRU applies r to h before the hidden matmul while claiming PyTorch's GRU.",
        "parity",
        "gru_reset_before",
        {"gru"},
        Bugs(reset_before=True),
    ),
    _entry(
        "missing_bias_ih",
        "The GRU leaves out the input bias b_ih.",
        "parity",
        "missing_bias_ih",
        {"gru"},
        Bugs(no_bias_ih=True),
    ),
    _entry(
        "missing_bias_hh",
        "The GRU leaves out the hidden bias b_hh (b_hn inside the reset gate included).",
        "parity",
        "missing_bias_hh",
        {"gru"},
        Bugs(no_bias_hh=True),
    ),
    _entry(
        "hidden_forget_bias",
        "The LSTM adds 1 to the forget gate's pre-activation at run time, like TensorFlow.",
        "parity",
        "hidden_forget_bias",
        {"lstm"},
        Bugs(forget_bias=1.0),
    ),
    _entry(
        "no_nonlinearity",
        "The Elman recurrence has no tanh (seed 000's DummyRNN).",
        "parity",
        "no_nonlinearity",
        {"elman"},
        Bugs(candidate="identity"),
    ),
    _entry(
        "relu_for_tanh",
        "The GRU candidate n uses relu instead of tanh.",
        "parity",
        "relu_for_tanh",
        {"gru"},
        Bugs(candidate="relu"),
    ),
    _entry(
        "hard_sigmoid",
        "The LSTM gates use old Keras' hard_sigmoid, clip(0.2 x + 0.5, 0, 1), for sigmoid.",
        "parity",
        "hard_sigmoid",
        {"lstm"},
        Bugs(recurrent="hard_sigmoid"),
    ),
    _entry(
        "gru_interpolation_swapped",
        "The GRU computes h' = z * n + (1 - z) * h instead of (1 - z) * n + z * h.",
        "parity",
        "gru_interpolation_swapped",
        {"gru"},
        Bugs(interpolation_swapped=True),
    ),
    _entry(
        "transposed_weight",
        "The Elman network multiplies h by W_hh transposed (h @ W_hh), silent for square W_hh.",
        "parity",
        "transposed_weight",
        {"elman"},
        Bugs(transposed_hh=True),
    ),
    _entry(
        "gru_reset_after",
        "A GRU declared as gru:reset_before applies r after the hidden matmul, as PyTorch does.",
        "parity",
        "gru_reset_after",
        {"gru:reset_before"},
        Bugs(reset_after=True),
    ),
    _entry(
        "biases_folded",
        "The GRU adds b_hn outside the reset gate, folded into the input bias.",
        "parity",
        "biases_folded",
        {"gru"},
        Bugs(biases_folded=True),
    ),
    _entry(
        "tanh_for_relu",
        "An Elman RNN declared with nonlinearity='relu' (elman:relu) computes tanh.",
        "parity",
        "tanh_for_relu",
        {"elman:relu"},
        Bugs(relu_as_tanh=True),
    ),
    _entry(
        "tanh_read_out",
        "The Elman recurrence is linear and tanh is applied only to the output (seed 000).",
        "parity",
        "tanh_read_out",
        {"elman"},
        Bugs(tanh_read_out=True),
    ),
    _entry(
        "hx_ignored",
        "The GRU checks the hx it is given, then starts from zeros anyway.",
        "parity",
        "hx_ignored",
        {"gru"},
        Bugs(hx_ignored=True),
    ),
    _entry(
        "float32_compute",
        "The LSTM casts input, state and weights to float32 and its results back to float64.",
        "parity",
        "computes_in_float32",
        {"lstm"},
        Bugs(float32_compute=True),
    ),
    _entry(
        "h0_direction_major",
        "h0 and c0 are read direction-major (direction * L + layer) in a stacked net.",
        "parity",
        "h0_direction_major",
        {"lstm"},
        Bugs(h0_direction_major=True),
    ),
    _entry(
        "layers_fed_swapped",
        "Layers above the first are fed cat(reverse, forward) instead of cat(forward, reverse).",
        "parity",
        "layers_fed_swapped",
        {"gru"},
        Bugs(layers_fed_swapped=True),
    ),
    _entry(
        "directions_swapped",
        "Every concatenation of the directions is cat(reverse, forward), the output's too.",
        "parity",
        "directions_swapped",
        {"elman"},
        Bugs(directions_swapped=True),
    ),
    _entry(
        "h0_first_layer_only",
        "A stacked GRU passes hx to its first layer only; the layers above start from zeros.",
        "parity",
        "h0_first_layer_only",
        {"gru"},
        Bugs(h0_first_layer_only=True),
    ),
    _entry(
        "hn_cn_swapped",
        "The LSTM returns (c_n, h_n) instead of (h_n, c_n).",
        "parity",
        "hn_cn_swapped",
        {"lstm"},
        Bugs(states_swapped=True),
    ),
    _entry(
        "hn_from_last_step",
        "h_n of the last layer is output[-1]: the padding for short sequences, and the reverse "
        "direction's first step.",
        "layout",
        "hn_from_last_step",
        {"elman"},
        Bugs(hn_from_last_step=True),
    ),
    _entry(
        "state_carried_over",
        "Without hx, each call starts from the previous call's final states (a stateful net).",
        "robustness",
        "state_carried_over",
        {"gru"},
        Bugs(stateful=True),
    ),
    _entry(
        "log_space_forget",
        "The LSTM computes f * c as exp(log f + log c), NaN wherever c is negative.",
        "parity",
        None,
        {"lstm"},
        Bugs(log_space_forget=True),
        failure="non-finite",
    ),
    _entry(
        "hn_direction_major",
        "h_n and c_n are stacked direction-major (direction * L + layer).",
        "layout",
        "hn_direction_major",
        {"lstm"},
        Bugs(hn_direction_major=True),
    ),
    _entry(
        "reverse_over_padding",
        "The reverse direction of packed input starts on the pad tokens.",
        "layout",
        "reverse_over_padding",
        {"gru"},
        Bugs(reverse_over_padding=True),
    ),
    _entry(
        "reverse_not_realigned",
        "Reverse-direction outputs are left in processing order, not flipped back.",
        "layout",
        "reverse_not_realigned",
        {"elman"},
        Bugs(reverse_not_realigned=True),
    ),
    _entry(
        "packed_ignored",
        "Packed input is run as if padded steps were data, so h_n comes from the padding.",
        "layout",
        "packed_ignored",
        {"gru"},
        Bugs(packed_ignored=True),
    ),
    _entry(
        "batch_first_states",
        "batch_first is applied to h_n as well as to the output.",
        "shapes",
        None,
        {"gru"},
        Bugs(batch_first_states=True),
        failure="shape",
    ),
    _entry(
        "batch1_squeeze",
        "Output and h_n are .squeeze()d, losing the batch dimension at B = 1 (seed 003).",
        "shapes",
        None,
        {"elman"},
        Bugs(squeeze=True),
        failure="shape",
    ),
    _entry(
        "unbatched_as_batch",
        "2-D (unbatched) input is unsqueezed on the time dimension: T becomes the batch.",
        "shapes",
        None,
        {"gru"},
        Bugs(unbatched_as_batch=True),
        failure="raised",
    ),
    ZooEntry(
        "projection_skipped",
        "The LSTM ignores proj_size: no W_hr, so h and the output are hidden_size wide.",
        projection_skipped("zoo:projection_skipped"),
        "shapes",
        "projection_skipped",
        failure="raised",
    ),
    _entry(
        "missing_gradient",
        "bias_ih enters the graph detached, so it never gets a gradient.",
        "gradients",
        None,
        {"lstm"},
        Bugs(detached_bias=True),
        failure="missing-gradient",
    ),
    _entry(
        "state_default_device",
        "The zero state is torch.zeros(...) without device=, so it stays on the CPU.",
        "device",
        "zero_state_device",
        {"gru"},
        Bugs(zero_state="default_device"),
        failure="device",
    ),
    _entry(
        "state_cuda_if_available",
        "The zero state goes to 'cuda' if available else 'cpu' (seed 003), ignoring the input.",
        "device",
        "zero_state_device",
        {"lstm"},
        Bugs(zero_state="cuda_if_available"),
        failure="device",
    ),
    _entry(
        "state_plain_attribute",
        "The zero state is a plain tensor attribute, not a buffer, so .to(device) leaves it.",
        "device",
        "zero_state_device",
        {"elman"},
        Bugs(zero_state="attribute"),
        moved=True,
        failure="device",
    ),
    _entry(
        "state_float32",
        "The zero state is created as float32 whatever the input's dtype.",
        "dtype",
        "zero_state_dtype",
        {"lstm"},
        Bugs(zero_state="float32"),
        failure="raised",
    ),
    _entry(
        "input_mutated",
        "batch_first input is transposed in place (transpose_), changing the caller's tensor.",
        "robustness",
        None,
        {"gru"},
        Bugs(mutate_input=True),
        failure="shape",
    ),
    _entry(
        "dropout_after_last",
        "Dropout is applied after the last layer too, not only between layers.",
        "robustness",
        None,
        {"lstm"},
        Bugs(dropout_after_last=True),
    ),
    _entry(
        "dropout_ignored",
        "The dropout argument is accepted but never applied, in training mode too.",
        "robustness",
        None,
        {"gru"},
        Bugs(dropout_ignored=True),
    ),
    _entry(
        "nondeterministic",
        "The output carries rounding-size random noise, so identical runs differ.",
        "robustness",
        None,
        {"elman"},
        Bugs(noise=True),
    ),
    _entry(
        "state_not_reusable",
        "The LSTM returns (h_n, c_n) as a list but accepts hx only as a tuple.",
        "robustness",
        None,
        {"lstm"},
        Bugs(state_as_list=True),
        failure="raised",
    ),
]

ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in ENTRIES}
