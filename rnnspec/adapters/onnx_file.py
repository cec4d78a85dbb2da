"""``--impl path/to/model.onnx``: an ONNX file whose graph is a stack of RNN, GRU or LSTM nodes.

The file is run as it is, by ONNX Runtime; the kit reads what it needs to judge it:

- the cell from the nodes' operator and attributes (``linear_before_reset=0`` is
  ``gru:reset_before``, ``activations=[Relu]`` is ``elman:relu``, a P input is
  ``lstm:peephole``, ``input_forget=1`` is ``lstm:coupled``);
- the weights from the initializers (or Constant nodes) feeding W, R, B and P, mapped onto
  the canonical layout by :func:`rnnspec.layouts.from_onnx`: one layer per node;
- the call convention of ``torch.onnx.export`` of a ``torch.nn`` RNN: graph inputs
  ``(input[, h0[, c0]])``, outputs ``(output, h_n[, c_n])``; the graph is batch-first when
  its input reaches the first node through a ``Transpose(perm=[1, 0, 2])`` or the node has
  ``layout=1``. Input of the other layout is transposed around the session; a graph without
  state inputs cannot take h0 (those cases are unsupported), and zeros are fed for
  ``hx=None`` when it has them.

It computes in float32 on the CPU and gets forward checks (no gradients, no packing). The
gold comes from the source network beside the file when there is one
(:func:`rnnspec.fixed.save_source`), else from the file's own weights and attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec import fixed
from rnnspec.adapters import bridge, runtime_capabilities
from rnnspec.adapters.onnxruntime import OPERATORS, libraries, session
from rnnspec.config import RNNConfig
from rnnspec.errors import ImplementationError
from rnnspec.harness import Unsupported
from rnnspec.layouts import from_onnx
from rnnspec.protocol import Implementation

KINDS = {operator: kind for kind, operator in OPERATORS.items()}
WEIGHT_INPUTS = {1: "W", 2: "R", 3: "B", 7: "P"}  # positions in the operators' input lists


class OnnxFile:
    """An ONNX file read once: its cell, configuration, canonical weights and signature."""

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx import helper, numpy_helper

        self.path = path
        self.model = onnx.load(str(path))
        graph = self.model.graph
        constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute:
                constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        nodes = [node for node in graph.node if node.op_type in KINDS]
        if not nodes:
            raise ValueError("the graph has no RNN, GRU or LSTM node")
        if len({node.op_type for node in nodes}) > 1:
            raise ValueError(f"the graph mixes operators {sorted({n.op_type for n in nodes})}")
        self.attributes = [
            {a.name: helper.get_attribute_value(a) for a in node.attribute} for node in nodes
        ]
        layers = [self._weights(node, constants) for node in nodes]
        self.cell = self._cell(nodes[0].op_type, self.attributes[0], layers[0])
        first = self.attributes[0]
        direction = _text(first.get("direction", "forward"))
        if direction == "reverse" or "clip" in first:
            raise ValueError(f"unsupported node attributes: direction={direction}, clip")
        self.config = RNNConfig(
            cell=self.cell,
            input_size=int(layers[0]["W"].shape[2]),
            hidden_size=int(first["hidden_size"]),
            num_layers=len(nodes),
            bidirectional=direction == "bidirectional",
            bias="B" in layers[0],
        )
        self.weights: dict[str, np.ndarray] = {}
        for layer, onnx_weights in enumerate(layers):
            self.weights.update(from_onnx(onnx_weights, self.config, layer))
        self.inputs = [value.name for value in graph.input if value.name not in constants]
        self.outputs = [value.name for value in graph.output]
        self.batch_first = self._batch_first(graph, nodes[0])

    @staticmethod
    def _weights(node: Any, constants: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = {}
        for position, name in WEIGHT_INPUTS.items():
            source = node.input[position] if position < len(node.input) else ""
            if not source:
                continue
            if source not in constants:
                raise ValueError(
                    f"{node.op_type} input {name} ({source!r}) is computed, not stored; "
                    "export with constant folding"
                )
            found[name] = constants[source].astype(np.float64)
        return found

    @staticmethod
    def _cell(operator: str, attributes: Mapping[str, Any], weights: Mapping[str, Any]) -> str:
        kind = KINDS[operator]
        activations = [_text(a) for a in attributes.get("activations", [])]
        if kind == "elman":
            if set(activations) - {"Tanh", "Relu"} or len(set(activations)) > 1:
                raise ValueError(f"unsupported RNN activations {activations}")
            return "elman:relu" if activations[:1] == ["Relu"] else "elman"
        if activations and activations[:3] != ["Sigmoid", "Tanh", "Tanh"][: len(activations)]:
            raise ValueError(f"unsupported {operator} activations {activations}")
        if kind == "gru":
            return "gru" if attributes.get("linear_before_reset", 0) else "gru:reset_before"
        if attributes.get("input_forget", 0):
            return "lstm:coupled"
        return "lstm:peephole" if "P" in weights else "lstm"

    def _batch_first(self, graph: Any, first: Any) -> bool:
        if self.attributes[0].get("layout", 0) == 1:
            return True
        producers = {output: node for node in graph.node for output in node.output}
        feeding = producers.get(first.input[0])
        return bool(
            feeding is not None
            and feeding.op_type == "Transpose"
            and feeding.input[0] == self.inputs[0]
            and [a.ints for a in feeding.attribute if a.name == "perm"] == [[1, 0, 2]]
        )


class OnnxFileNetwork:
    """The file's ONNX Runtime session behind :func:`rnnspec.adapters.bridge.call`."""

    numpy_dtype = np.float32

    def __init__(self, source: OnnxFile, config: RNNConfig) -> None:
        self.source, self.config = source, config
        self.session = session(source.model)

    def run(
        self, x: np.ndarray, states: tuple[np.ndarray, ...] | None, lengths: list[int] | None
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        source = self.source
        state_inputs = source.inputs[1:]
        if states is not None and not state_inputs:
            raise Unsupported(f"{source.path.name} takes no initial state (graph inputs: input)")
        swap = self.config.batch_first != source.batch_first
        feeds = {source.inputs[0]: np.ascontiguousarray(x.swapaxes(0, 1) if swap else x)}
        if state_inputs:
            batch = x.shape[0 if self.config.batch_first else 1]
            shapes = self.config.state_shapes(self.config.resolve(), batch)
            given = states or tuple(np.zeros(shape, np.float32) for shape in shapes)
            feeds.update(zip(state_inputs, given, strict=True))
        output, *finals = self.session.run(None, feeds)
        return (output.swapaxes(0, 1) if swap else output), tuple(finals)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def implementation(path: Path) -> Implementation:
    """A fixed-weight candidate for the ONNX file at ``path``, judged against its source
    network (``model.npz`` beside it, :func:`rnnspec.fixed.save_source`) when there is one."""
    name = str(path)
    libraries(name)
    if not path.is_file():
        raise ImplementationError("no such file", name)
    try:
        source = OnnxFile(path)
    except (ValueError, KeyError, IndexError) as error:
        raise ImplementationError(f"not a stack of RNN/GRU/LSTM nodes: {error}", name) from error
    cell, weights, against = fixed.judged_against(path, source.cell, source.weights)
    return Implementation(
        name,
        lambda config, device, dtype: OnnxFileNetwork(source, config),
        runtime_capabilities({cell}, packed=False, unbatched=False),
        call=bridge.call,
        read_weights=lambda: weights,
        description=f"ONNX file {path.name}: {source.config.describe()}, run by ONNX Runtime "
        f"in float32 ({'batch-first' if source.batch_first else 'time-major'} graph), "
        f"judged against {against}",
    )
