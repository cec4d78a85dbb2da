"""Built-in ``onnxruntime``: ONNX Runtime's own RNN, GRU and LSTM operators.

Each layer is a single-node ONNX model built with ``onnx.helper`` (opset 14), its weights
as initializers (:func:`rnnspec.layouts.to_onnx`), and the attributes mapped from the
config: ``direction`` (forward or bidirectional), ``linear_before_reset`` (1 for ``gru``, 0 for ``gru:reset_before``), ``activations``
(Relu for ``elman:relu``), ``input_forget=1`` for ``lstm:coupled``, the peephole input P
for ``lstm:peephole``. Packed input becomes ``sequence_lens``; no hx leaves
``initial_h``/``initial_c`` out and no bias leaves B out, so ONNX Runtime's own defaults
run. ONNX Runtime's CPU kernels compute in float32 only (float64 raises "does not support
double"): the candidate declares float32, CPU, no gradients, no projection, no dropout.
They also reject ``layout=1`` ("Batchwise recurrent operations (layout == 1) are not
supported", checked by tests/test_onnx.py), so batch_first input is transposed to
time-major around the sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from rnnspec.adapters import bridge, require, runtime_capabilities
from rnnspec.config import RNNConfig
from rnnspec.layouts import to_onnx
from rnnspec.protocol import ALL_CELLS, Implementation

OPSET = 14
OPERATORS = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
CAPABILITIES = runtime_capabilities(ALL_CELLS)


def layer_attributes(config: RNNConfig) -> dict[str, Any]:
    """The ONNX attributes of each layer's node for ``config``."""
    attributes: dict[str, Any] = {
        "hidden_size": config.hidden_size,
        "direction": "bidirectional" if config.bidirectional else "forward",
    }
    if config.cell == "elman:relu":
        attributes["activations"] = ["Relu"] * config.num_directions
    if config.kind == "gru":
        attributes["linear_before_reset"] = int(config.cell == "gru")
    if config.cell == "lstm:coupled":
        attributes["input_forget"] = 1
    return attributes


def layer_model(
    config: RNNConfig,
    onnx_weights: Mapping[str, np.ndarray],
    *,
    lengths: bool,
    states: bool,
) -> Any:
    """One layer as a single-node ``onnx.ModelProto``: inputs X (and sequence_lens,
    initial_h, initial_c when asked for), outputs Y, Y_h (and Y_c)."""
    from onnx import TensorProto, helper, numpy_helper

    lstm = config.kind == "lstm"
    state_names = ["initial_h", "initial_c"] if lstm else ["initial_h"]
    given = {"X", "W", "R", *onnx_weights}
    given |= ({"sequence_lens"} if lengths else set()) | (set(state_names) if states else set())
    if not config.bias:
        given.discard("B")
    slots = ["X", "W", "R", "B", "sequence_lens", *state_names] + (["P"] if lstm else [])
    node_inputs = [name if name in given else "" for name in slots]
    while node_inputs[-1] == "":
        node_inputs.pop()
    graph_inputs = [name for name in node_inputs if name and name not in onnx_weights]
    outputs = ["Y", "Y_h", "Y_c"] if lstm else ["Y", "Y_h"]
    node = helper.make_node(
        OPERATORS[config.kind], node_inputs, outputs, **layer_attributes(config)
    )
    initializers = [
        numpy_helper.from_array(value.astype(np.float32), name)
        for name, value in onnx_weights.items()
        if name in node_inputs
    ]

    def value_info(name: str) -> Any:
        kind = TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT
        rank = {"sequence_lens": 1, "Y": 4}.get(name, 3)
        return helper.make_tensor_value_info(name, kind, [None] * rank)

    graph = helper.make_graph(
        [node],
        f"rnnspec_{config.kind}_layer",
        [value_info(name) for name in graph_inputs],
        [value_info(name) for name in outputs],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def session(model: Any) -> Any:
    """An ONNX Runtime CPU session for ``model``, its log quiet (errors still raise)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


class OrtNetwork:
    """A stack of single-node ONNX Runtime sessions, one per layer (built on first use
    for each combination of packed input and given state)."""

    numpy_dtype = np.float32

    def __init__(self, config: RNNConfig) -> None:
        self.config = config
        self.layers: list[dict[str, np.ndarray]] = []
        self.sessions: dict[tuple[int, bool, bool], Any] = {}

    def load(self, weights: Mapping[str, Any]) -> None:
        canonical = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
        self.layers = [
            to_onnx(canonical, self.config, layer) for layer in range(self.config.num_layers)
        ]
        self.sessions.clear()

    def _session(self, layer: int, lengths: bool, states: bool) -> Any:
        key = (layer, lengths, states)
        if key not in self.sessions:
            model = layer_model(self.config, self.layers[layer], lengths=lengths, states=states)
            self.sessions[key] = session(model)
        return self.sessions[key]

    def run(
        self, x: np.ndarray, states: tuple[np.ndarray, ...] | None, lengths: list[int] | None
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        config = self.config
        directions = config.num_directions
        if config.batch_first:
            x = x.swapaxes(0, 1)
        finals: list[list[np.ndarray]] = [[] for _ in config.resolve().states]
        for layer in range(config.num_layers):
            feeds: dict[str, np.ndarray] = {"X": np.ascontiguousarray(x)}
            if lengths is not None:
                feeds["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
            if states is not None:
                for name, state in zip(("initial_h", "initial_c"), states, strict=False):
                    feeds[name] = state[layer * directions : (layer + 1) * directions]
            y, *layer_finals = self._session(layer, lengths is not None, states is not None).run(
                None, feeds
            )
            # Y is (T, D, B, H); the next layer takes (T, B, D·H)
            x = y.transpose(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)
            for found, final in zip(finals, layer_finals, strict=True):
                found.append(final)
        output = x.swapaxes(0, 1) if config.batch_first else x
        return output, tuple(np.concatenate(found) for found in finals)


def libraries(name: str = "onnxruntime") -> Any:
    """onnxruntime, after checking that onnx is there too; else :class:`NotInstalled`."""
    require("onnx", "onnx", name)
    return require("onnxruntime", "onnx", name)


def implementation() -> Implementation:
    """ONNX Runtime's RNN, GRU and LSTM operators (float32, CPU)."""
    onnxruntime = libraries()
    return Implementation(
        "onnxruntime",
        lambda config, device, dtype: OrtNetwork(config),
        CAPABILITIES,
        load_weights=OrtNetwork.load,
        call=bridge.call,
        description=f"ONNX Runtime {onnxruntime.__version__}: RNN/GRU/LSTM operators, one "
        "single-node model per layer, float32 on the CPU",
    )
