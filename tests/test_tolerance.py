"""The tolerance policy is calibrated: PyTorch's kernels fit well inside it, bugs far outside."""

import numpy as np
import pytest
import torch

from reference.gold import forward
from rnnspec import torch_equivalents
from rnnspec.compare import to_numpy
from rnnspec.config import RNNConfig
from rnnspec.tolerance import tolerance
from rnnspec.weights import random_input, random_state, random_weights

DTYPES = ["float32", "bfloat16", "float16"]
MARGIN = 2.0  # torch's own error must stay below half the bound


def _torch_error(cell: str, dtype: str, steps: int, layers: int, permute: bool = False) -> float:
    config = RNNConfig(
        cell=cell, input_size=5, hidden_size=7, num_layers=layers, bidirectional=True
    )
    weights = random_weights(config, seed=3)
    x, hx = random_input(config, steps, 3, seed=3), random_state(config, 3, seed=3)
    expected, _ = forward(config, weights, x, hx)
    torch_dtype = getattr(torch, dtype)
    module = torch_equivalents.module(config, dtype=torch_dtype)
    with torch.no_grad():
        for name, param in module.named_parameters():
            value = torch.as_tensor(weights[name])
            if permute and name.startswith("weight_ih"):
                value = torch.cat(value.chunk(len(config.resolve().gates))[::-1])
            param.copy_(value)
        states = tuple(torch.as_tensor(s).to(torch_dtype) for s in hx)
        output, _ = module(
            torch.as_tensor(x).to(torch_dtype), states if len(states) > 1 else states[0]
        )
    return float(np.abs(to_numpy(output) - expected).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["elman", "gru", "lstm"])
@pytest.mark.parametrize(("steps", "layers"), [(1, 1), (30, 2)])
def test_torch_kernels_fit_well_inside_the_bound(cell, dtype, steps, layers):
    error = _torch_error(cell, dtype, steps, layers)
    bound = tolerance(dtype, steps, layers).atol
    assert error * MARGIN <= bound, (
        f"torch.nn output: max abs error {error:.3g}, but should be at most bound/{MARGIN:g} "
        f"(atol={bound:.3g}) [{cell} bidirectional layers={layers} T={steps} {dtype}]"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_reversed_gate_order_lands_far_outside(cell, dtype):
    error = _torch_error(cell, dtype, steps=6, layers=1, permute=True)
    bound = tolerance(dtype, 6, 1)
    assert error > 2 * (bound.atol + bound.rtol), (
        f"output with reversed gate order: max abs error {error:.3g}, but should exceed "
        f"2 * (atol + rtol) ({bound}) [{cell} bidirectional T=6 {dtype}]"
    )


def test_the_bound_grows_with_length_and_never_falls_below_the_floor():
    assert tolerance("float32", 100).atol > tolerance("float32", 1).atol
    assert tolerance("float64", 1).atol == 1e-12
    assert tolerance("float32", 5, gradient=True).atol == 4 * tolerance("float32", 5).atol
    with pytest.raises(ValueError, match="no tolerance for dtype 'int8'"):
        tolerance("int8", 5)
