"""The keras built-in on the torch backend: the mapping checked against Keras' own layers."""

from __future__ import annotations

import os
import warnings

import pytest

from rnnspec import registry
from rnnspec.cases import make_case
from rnnspec.checks import gradients, ignore, layout, parity, robustness

if os.environ.get("KERAS_BACKEND", "torch") != "torch":
    pytest.skip("these tests drive Keras on the torch backend", allow_module_level=True)
os.environ.setdefault("KERAS_BACKEND", "torch")
pytest.importorskip("keras")

SIZES = dict(input_size=5, hidden_size=7, steps=6, batch=3, dtype="float32")


@pytest.mark.parametrize("cell", ["elman", "elman:relu", "gru", "gru:reset_before", "lstm"])
def test_keras_passes_parity_layout_packing_and_gradients(cell: str) -> None:
    impl = registry.load("keras")
    case = make_case(cell, 2, True, batch_first=False, **SIZES)
    parity.check_forward(impl, case, ignore)
    parity.check_forward(impl, case.replace(given_state=False), ignore)
    layout.check_layout(impl, case, ignore)
    robustness.check_packed(impl, make_case(cell, 1, True, lengths=(3, 6, 1), **SIZES), ignore)
    gradients.check_gradients(impl, case, ignore)


def test_keras_declares_what_it_is() -> None:
    caps = registry.load("keras").capabilities
    assert caps.dtypes == {"float32"}  # Keras maps float64 products to float32 (not TF)
    assert caps.gradients and not caps.proj_size
    assert "lstm:peephole" not in caps.cells


def test_keras_file_runs_with_its_own_weights(tmp_path) -> None:
    import keras

    from rnnspec import fixed

    layers = [
        keras.layers.Bidirectional(keras.layers.GRU(7, return_sequences=True)) for _ in range(2)
    ]
    with warnings.catch_warnings():  # Keras' own saving code warns under NumPy 2
        warnings.simplefilter("ignore", DeprecationWarning)
        keras.Sequential([keras.Input((None, 5)), *layers]).save(tmp_path / "gru.keras")
        impl = registry.load(str(tmp_path / "gru.keras"))
    config = fixed.config(impl)
    assert (config.cell, config.num_layers, config.bidirectional) == ("gru", 2, True)
    for batch_first in (True, False):
        case = fixed.fit(make_case("gru", batch_first=batch_first, **SIZES), config)
        parity.check_forward(impl, case, ignore)
        layout.check_layout(impl, case, ignore)
