"""The generated references' matrix products: the oneDNN path agrees with addmm and is taken
only where no gradient is needed."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import forward_ad

from reference import kernels

ONEDNN = kernels._onednn_works()


def _operands(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(6, 20, generator=generator, dtype=dtype)[:, ::2]  # not contiguous
    weight = torch.randn(12, 10, generator=generator, dtype=dtype)
    add = torch.randn(6, 12, generator=generator, dtype=dtype)
    bias = torch.randn(12, generator=generator, dtype=dtype)
    return a, weight, add, bias


@pytest.mark.parametrize("rows", [None, 6])
def test_product_agrees_with_addmm(rows: int | None) -> None:
    a, weight, add, bias = _operands()
    product = kernels.linear(weight, grad=False, rows=rows)
    torch.testing.assert_close(product(a), a @ weight.t())
    torch.testing.assert_close(product(a, add), torch.addmm(add, a, weight.t()))
    torch.testing.assert_close(product(a, bias), torch.addmm(bias, a, weight.t()))


@pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN inner product")
def test_onednn_only_without_gradients_on_cpu_float32() -> None:
    _, weight, _, _ = _operands()
    assert kernels.linear(weight, grad=False, rows=6).__name__ == "by_onednn"
    assert kernels.linear(weight, grad=True, rows=6).__name__ == "by_addmm"
    assert kernels.linear(weight.double(), grad=False).__name__ == "by_addmm"
    assert kernels.linear(weight.to("meta"), grad=False).__name__ == "by_addmm"


def test_gradient_path_records_autograd() -> None:
    a, weight, add, _ = _operands(torch.float64)
    weight.requires_grad_(True)
    assert kernels.needs_grad(a, None, weight)
    kernels.linear(weight, grad=True)(a, add).sum().backward()
    assert weight.grad is not None
    with torch.no_grad():
        assert not kernels.needs_grad(a, weight)


# torch's forward-mode machinery scripts a helper on first use, with a deprecation warning
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_forward_mode_autograd_takes_the_differentiable_path() -> None:
    a, weight, _, _ = _operands(torch.float32)
    tangent = torch.ones_like(a)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(a, tangent)
        product = kernels.linear(weight, kernels.needs_grad(dual, weight), rows=6)(dual)
        got = forward_ad.unpack_dual(product).tangent
    assert got is not None
    torch.testing.assert_close(got, tangent @ weight.t())


@pytest.mark.parametrize("shape", [(), (1,), (6, 1), (1, 12), (3, 12)])
def test_an_addend_of_another_shape_broadcasts_or_raises_as_addmm_does(shape: tuple) -> None:
    a, weight, _, _ = _operands()
    add = torch.ones(shape)
    product = kernels.linear(weight, grad=False, rows=6)
    try:
        expected = torch.addmm(add, a, weight.t())
    except RuntimeError:
        with pytest.raises(RuntimeError):
            product(a, add)
        return
    torch.testing.assert_close(product(a, add), expected)
