"""rnnspec.layouts: round trips, and the ONNX and Keras mappings against the real libraries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnspec import layouts
from rnnspec.cases import make_case
from rnnspec.config import RNNConfig
from rnnspec.harness import gold, make_inputs
from rnnspec.protocol import ALL_CELLS

RNG = np.random.default_rng(0)


def stacked(order: tuple[str, ...], hidden: int = 2, columns: int = 3) -> np.ndarray:
    """Blocks whose every value says which gate it belongs to (gate index * 10 + row)."""
    return np.concatenate(
        [
            np.full((hidden, columns), 10.0 * index) + np.arange(hidden)[:, None]
            for index, _ in enumerate(order)
        ]
    )


def test_permute_gates_moves_each_block_to_its_place() -> None:
    onnx = layouts.permute_gates(stacked(("i", "f", "g", "o")), "pytorch", "onnx", kind="lstm")
    # PyTorch's blocks i=0, f=10, g=20, o=30 land in ONNX's order i, o, f, c
    assert onnx[::2, 0].tolist() == [0.0, 30.0, 10.0, 20.0]
    assert np.array_equal(
        layouts.permute_gates(onnx, "onnx", "pytorch", kind="lstm"), stacked(("i", "f", "g", "o"))
    )


@pytest.mark.parametrize("kind", ["lstm", "gru", "elman"])
@pytest.mark.parametrize("library", sorted(layouts.GATE_ORDERS))
def test_permute_gates_round_trips(kind: str, library: str) -> None:
    array = RNG.standard_normal((len(layouts.gate_order("pytorch", kind)) * 3, 4))
    there = layouts.permute_gates(array, "pytorch", library, kind=kind)
    assert np.array_equal(layouts.permute_gates(there, library, "pytorch", kind=kind), array)
    tensor = torch.as_tensor(array)
    assert torch.equal(
        layouts.permute_gates(tensor, "pytorch", library, kind=kind), torch.as_tensor(there)
    )


def test_gate_orders_reject_unknown_names_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="no gate order for 'mxnet'"):
        layouts.gate_order("mxnet", "lstm")
    with pytest.raises(ValueError, match="does not split into 4 gates"):
        layouts.split_gates(np.zeros((10, 2)), ("i", "f", "g", "o"))
    with pytest.raises(ValueError, match="name different gates"):
        layouts.permute_gates(np.zeros((6, 2)), ("r", "z", "n"), ("i", "f", "g"))


def test_fuse_and_split_input_hidden() -> None:
    weight_ih, weight_hh = RNG.standard_normal((12, 5)), RNG.standard_normal((12, 3))
    fused = layouts.fuse_input_hidden(weight_ih, weight_hh)
    assert fused.shape == (12, 8)
    x, h = RNG.standard_normal(5), RNG.standard_normal(3)
    assert np.allclose(fused @ np.concatenate([x, h]), weight_ih @ x + weight_hh @ h)
    back = layouts.split_input_hidden(fused, 5)
    assert np.array_equal(back[0], weight_ih) and np.array_equal(back[1], weight_hh)
    kernel = layouts.fuse_input_hidden(weight_ih.T, weight_hh.T, axis=0)
    assert np.array_equal(layouts.split_input_hidden(kernel, 5, axis=0)[1], weight_hh.T)


def test_one_bias_and_two_biases() -> None:
    bias_ih, bias_hh = RNG.standard_normal(8), RNG.standard_normal(8)
    one = layouts.one_bias(bias_ih, bias_hh)
    assert np.array_equal(one, bias_ih + bias_hh)
    first, second = layouts.two_biases(one)
    assert np.array_equal(first + second, one) and not second.any()


def test_per_gate_named_matrices_round_trip() -> None:
    letters = {"i": "i", "f": "f", "g": "c", "o": "o"}
    weight = RNG.standard_normal((4 * 3, 5))
    named = layouts.to_named(weight, "W_x{gate}", letters, transpose=True)
    assert sorted(named) == ["W_xc", "W_xf", "W_xi", "W_xo"]
    assert np.array_equal(named["W_xc"], weight[6:9].T)
    assert np.array_equal(layouts.from_named(named, "W_x{gate}", letters, transpose=True), weight)


def test_states_unstack_layer_major_direction_minor() -> None:
    states = RNG.standard_normal((3 * 2, 4, 5))
    per_layer = layouts.unstack_states(states, 3, 2)
    assert np.array_equal(per_layer[1][1], states[3])  # layer 1, reverse: index 1 * 2 + 1
    assert np.array_equal(layouts.stack_states(per_layer), states)
    assert torch.equal(
        layouts.stack_states(layouts.unstack_states(torch.as_tensor(states), 3, 2)),
        torch.as_tensor(states),
    )
    with pytest.raises(ValueError, match="3 layers x 2 directions need 6"):
        layouts.unstack_states(states[:4], 3, 2)


ONNX_CONFIGS = [
    RNNConfig(cell, input_size=5, hidden_size=4, num_layers=2, bidirectional=True, bias=bias)
    for cell in sorted(ALL_CELLS)
    for bias in (True, False)
]


@pytest.mark.parametrize("config", ONNX_CONFIGS, ids=lambda c: c.describe())
def test_onnx_mapping_round_trips(config: RNNConfig) -> None:
    weights = make_inputs(
        make_case(config.cell, 2, True, input_size=5, hidden_size=4, bias=config.bias)
    ).weights
    back = {}
    for layer in range(config.num_layers):
        back.update(layouts.from_onnx(layouts.to_onnx(weights, config, layer), config, layer))
    if config.cell == "lstm:coupled":  # no f block: ONNX's is zero, and comes back dropped
        assert back.keys() == weights.keys()
    assert all(np.array_equal(back[name], weights[name]) for name in weights)


@pytest.mark.parametrize("cell", sorted(ALL_CELLS))
def test_onnx_mapping_against_onnx_reference_operators(cell: str) -> None:
    """onnx.reference runs ONNX's own operator definitions on the mapped weights."""
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    from rnnspec.adapters.onnxruntime import layer_model

    if cell in ("lstm:coupled", "elman:relu"):
        pytest.skip("onnx.reference lacks input_forget and Relu (ONNX Runtime has both: test_onnx)")
    case = make_case(cell, 1, True, input_size=5, hidden_size=4, steps=6, batch=3)
    inputs = make_inputs(case)
    expected = gold(case, inputs)
    model = layer_model(
        case.config, layouts.to_onnx(inputs.weights, case.config, 0), lengths=False, states=True
    )
    onnx.checker.check_model(model)
    feeds = {"X": inputs.x.astype(np.float32)}
    feeds.update(
        zip(("initial_h", "initial_c"), (s.astype(np.float32) for s in inputs.hx), strict=False)
    )
    y, *finals = ReferenceEvaluator(model).run(None, feeds)
    output = y.transpose(0, 2, 1, 3).reshape(6, 3, -1)
    assert np.allclose(output, expected.output, atol=1e-5)
    for got, want in zip(finals, expected.states, strict=True):
        assert np.allclose(got, want, atol=1e-5)


KERAS_CELLS = ["elman", "gru", "gru:reset_before", "lstm"]


@pytest.mark.parametrize("cell", KERAS_CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_keras_mapping_round_trips(cell: str, bias: bool) -> None:
    config = RNNConfig(cell, input_size=5, hidden_size=4, bias=bias)
    weights = make_inputs(make_case(cell, input_size=5, hidden_size=4, bias=bias)).weights
    keras_weights = layouts.to_keras(weights, config, 0, 0)
    assert len(keras_weights) == (3 if bias else 2)
    if bias:
        assert keras_weights[2].shape == layouts.keras_bias_shape(config)
    back = layouts.from_keras(keras_weights, config, 0, 0)
    assert np.array_equal(back["weight_ih_l0"], weights["weight_ih_l0"])
    assert np.array_equal(back["weight_hh_l0"], weights["weight_hh_l0"])
    if bias and cell == "gru":  # the reset-after GRU keeps both biases
        assert np.array_equal(back["bias_hh_l0"], weights["bias_hh_l0"])
    elif bias:  # one bias: the sum, all of it on the input side
        total = weights["bias_ih_l0"] + weights["bias_hh_l0"]
        assert np.allclose(back["bias_ih_l0"] + back["bias_hh_l0"], total)
