"""Built-in ``keras``: Keras 3's SimpleRNN, GRU and LSTM layers on the active backend.

One Keras layer per network layer (``return_sequences=True, return_state=True``), wrapped
in ``Bidirectional`` for two directions; ``GRU(reset_after=True)`` is ``gru``,
``reset_after=False`` is ``gru:reset_before``, ``SimpleRNN(activation="relu")`` is
``elman:relu``. Weights go through :func:`rnnspec.layouts.to_keras` (kernels transposed,
gate columns LSTM (i, f, c, o), GRU (z, r, h), one bias = b_ih + b_hh except the
reset-after GRU's (2, 3H)); packed input becomes a ``mask``; Keras is batch-major, so
time-major input is transposed around it; ``initial_state`` takes each direction's
``[h, c]``.

The backend is ``KERAS_BACKEND`` (or ``keras.json``); when neither names one other than
TensorFlow and TensorFlow is not installed, ``torch``. On the torch backend the layers run on torch
tensors, so gradients come through torch's autograd; on the others the candidate runs on
NumPy copies, forward only. Keras computes in float32 on every backend but TensorFlow: a
float64 layer's products go through ``result_type``, which maps float64 to float32
(``keras/src/backend/common/dtypes.py``, ``BIT64_TO_BIT32_DTYPE``; measured: 5e-8 errors
against the float64 gold), so the candidate declares float32. ``model.keras`` files
(``--impl model.keras``) hold a ``Sequential`` stack of such layers.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec import fixed
from rnnspec.adapters import bridge, require, runtime_capabilities
from rnnspec.config import RNNConfig
from rnnspec.errors import ImplementationError
from rnnspec.layouts import from_keras, to_keras
from rnnspec.protocol import Implementation

CELLS = frozenset({"elman", "elman:relu", "gru", "gru:reset_before", "lstm"})
LAYERS = {"elman": "SimpleRNN", "gru": "GRU", "lstm": "LSTM"}


def load_keras(name: str = "keras") -> Any:
    """keras, imported on a backend that is installed; else :class:`NotInstalled`."""
    # keras.json names tensorflow unless edited (Keras writes that default on first import)
    if "KERAS_BACKEND" not in os.environ and _configured_backend() in (None, "tensorflow"):
        if importlib.util.find_spec("tensorflow") is None:
            os.environ["KERAS_BACKEND"] = "torch"
    return require("keras", "keras", name)


def _configured_backend() -> str | None:
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def on_torch(keras: Any) -> bool:
    return bool(keras.backend.backend() == "torch")


def keras_layer(keras: Any, config: RNNConfig, dtype: str) -> Any:
    """The Keras layer (Bidirectional when two directions) for one layer of ``config``."""
    options: dict[str, Any] = dict(
        units=config.hidden_size,
        return_sequences=True,
        return_state=True,
        use_bias=config.bias,
        dtype=dtype,
    )
    if config.cell == "elman:relu":
        options["activation"] = "relu"
    if config.kind == "gru":
        options["reset_after"] = config.cell == "gru"
    layer = getattr(keras.layers, LAYERS[config.kind])(**options)
    return keras.layers.Bidirectional(layer, dtype=dtype) if config.bidirectional else layer


def directions(layer: Any) -> list[Any]:
    """The per-direction layers: [forward, backward] of a Bidirectional, else [layer]."""
    return (
        [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
    )


class KerasNetwork:
    """Keras layers stacked the way torch.nn stacks layers, behind :func:`bridge.call`."""

    def __init__(self, keras: Any, config: RNNConfig, layers: list[Any], dtype: str) -> None:
        self.keras, self.config, self.layers = keras, config, layers
        self.numpy_dtype = None if on_torch(keras) else np.dtype(dtype)

    @classmethod
    def build(cls, config: RNNConfig, dtype: str) -> KerasNetwork:
        keras = load_keras()
        layers = []
        for layer in range(config.num_layers):
            built = keras_layer(keras, config, dtype)
            built.build((None, None, config.layer_input_size(layer)))
            layers.append(built)
        return cls(keras, config, layers, dtype)

    def load(self, weights: Mapping[str, Any]) -> None:
        canonical = {name: _numpy(value) for name, value in weights.items()}
        for index, layer in enumerate(self.layers):
            for direction, target in enumerate(directions(layer)):
                target.set_weights(to_keras(canonical, self.config, index, direction))

    def read(self) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            for direction, target in enumerate(directions(layer)):
                found.update(from_keras(target.get_weights(), self.config, index, direction))
        return found

    def gradients(self) -> dict[str, Any]:
        """Weight gradients (torch backend) under canonical names; the one bias Keras keeps
        for b_ih + b_hh gives its gradient to both."""
        found: dict[str, Any] = {}
        for index, layer in enumerate(self.layers):
            for direction, target in enumerate(directions(layer)):
                grads = [variable.value.grad for variable in target.weights]
                if any(grad is None for grad in grads):
                    continue
                mapped = from_keras([_numpy(g) for g in grads], self.config, index, direction)
                if self.config.bias and self.config.cell != "gru":
                    bias_ih = next(name for name in mapped if name.startswith("bias_ih"))
                    mapped[bias_ih.replace("bias_ih", "bias_hh")] = mapped[bias_ih]
                found.update(mapped)
        return found

    def run(
        self, x: Any, states: tuple[Any, ...] | None, lengths: list[int] | None
    ) -> tuple[Any, tuple[Any, ...]]:
        ops = self.keras.ops
        config = self.config
        batch_major = x if config.batch_first else ops.swapaxes(x, 0, 1)
        mask = None
        if lengths is not None:
            steps = batch_major.shape[1]
            mask = ops.convert_to_tensor(np.arange(steps)[None, :] < np.asarray(lengths)[:, None])
        kinds = len(config.resolve().states)
        finals: list[list[Any]] = [[] for _ in range(kinds)]
        for index, layer in enumerate(self.layers):
            initial = None
            if states is not None:
                slices = range(index * config.num_directions, (index + 1) * config.num_directions)
                initial = [state[i] for i in slices for state in states]
            output, *layer_finals = layer(batch_major, initial_state=initial, mask=mask)
            batch_major = output
            for position, final in enumerate(layer_finals):
                finals[position % kinds].append(final)
        output = batch_major if config.batch_first else ops.swapaxes(batch_major, 0, 1)
        return output, tuple(ops.stack(found) for found in finals)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    return np.asarray(value, dtype=np.float64)


def _dtype_name(dtype: Any) -> str:
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def implementation() -> Implementation:
    """Keras' SimpleRNN, GRU and LSTM on the active backend."""
    keras = load_keras()
    torch_backend = on_torch(keras)
    return Implementation(
        "keras",
        lambda config, device, dtype: KerasNetwork.build(config, _dtype_name(dtype)),
        runtime_capabilities(CELLS, gradients=torch_backend),
        load_weights=KerasNetwork.load,
        gradients=KerasNetwork.gradients,
        call=bridge.call,
        description=f"Keras {keras.__version__} on the {keras.backend.backend()} backend: "
        "SimpleRNN, GRU, LSTM, Bidirectional, stacked; "
        + (
            "float32, gradients through torch autograd"
            if torch_backend
            else "float32, forward only"
        ),
    )


def file_implementation(path: Path) -> Implementation:
    """A fixed-weight candidate for a ``model.keras`` file holding a Sequential stack of
    SimpleRNN, GRU or LSTM layers (Bidirectional or not), judged against its source network
    (``model.npz``) when there is one."""
    name = str(path)
    keras = load_keras(name)
    if not path.is_file():
        raise ImplementationError("no such file", name)
    try:
        model = keras.saving.load_model(str(path))
        layers = [
            layer
            for layer in model.layers
            if directions(layer)[0].__class__.__name__ in LAYERS.values()
        ]
        config = _file_config(layers)
        for layer in layers:  # the kit reads the final states too
            for target in (layer, *directions(layer)):
                target.return_state = True
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ImplementationError(f"not a stack of Keras RNN layers: {error}", name) from error
    dtype = directions(layers[0])[0].dtype
    network = KerasNetwork(keras, config, layers, dtype)
    cell, weights, against = fixed.judged_against(path, config.cell, network.read())
    return Implementation(
        name,
        lambda config, device, dtype_given: KerasNetwork(keras, config, layers, dtype),
        runtime_capabilities({cell}, dtype),
        call=bridge.call,
        read_weights=lambda: weights,
        description=f"Keras file {path.name}: {config.describe()} on the "
        f"{keras.backend.backend()} backend in {dtype}, judged against {against}",
    )


def _file_config(layers: list[Any]) -> RNNConfig:
    if not layers:
        raise ValueError("no SimpleRNN, GRU or LSTM layer")
    first = directions(layers[0])[0]
    kind = {value: key for key, value in LAYERS.items()}[first.__class__.__name__]
    cell = kind
    if kind == "gru" and not first.reset_after:
        cell = "gru:reset_before"
    if kind == "elman" and first.cell.activation.__name__ == "relu":
        cell = "elman:relu"
    return RNNConfig(
        cell=cell,
        input_size=int(first.cell.kernel.shape[0]),
        hidden_size=int(first.units),
        num_layers=len(layers),
        bidirectional=len(directions(layers[0])) == 2,
        bias=bool(first.use_bias),
    )
