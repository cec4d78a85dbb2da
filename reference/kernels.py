"""Matrix products for the generated PyTorch references.

``a @ weight.T (+ add)`` through oneDNN's inner product when nothing needs a gradient and the
operands are float32 on the CPU (at RNN shapes it beats ATen's BLAS path, with each weight
reordered once for the rows it will meet), through ``torch.addmm`` otherwise. Both compute the
same product; only the summation order within the tolerance differs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch
from torch.autograd import forward_ad

Product = Callable[..., torch.Tensor]


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """True when autograd, reverse or forward mode, will differentiate products of these."""
    given = [t for t in tensors if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in given):
        return True
    return any(forward_ad.unpack_dual(t).tangent is not None for t in given)


def linear(weight: torch.Tensor, grad: bool, rows: int | None = None) -> Product:
    """``product(a, add=None) = a @ weight.T + add``; ``rows``: the row count of the ``a``
    it will take, for oneDNN to reorder the weight for them once."""
    if grad or not _onednn_applies(weight):
        weight_t = weight.t()

        def by_addmm(a: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
            return a @ weight_t if add is None else torch.addmm(add, a, weight_t)

        return by_addmm
    packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows) if rows else weight
    width = weight.shape[0]

    def by_onednn(a: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        if add is None or add.shape == (width,):  # a bias
            return torch.ops.mkldnn._linear_pointwise(a, packed, add, "none", [], "")
        if add.shape == (a.shape[0], width):  # added inside the primitive
            return torch.ops.mkldnn._linear_pointwise.binary(a, add, packed, None, "add")
        return torch.addmm(add, a, weight.t())  # broadcasts, or raises as addmm does

    return by_onednn


def _onednn_applies(weight: torch.Tensor) -> bool:
    """oneDNN's ops have no fake-tensor kernels nor inductor lowering, and autocast does not
    cast their operands: not while compiling, exporting or autocasting."""
    on_cpu = weight.device.type == "cpu" and weight.dtype == torch.float32
    transformed = torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu")
    return on_cpu and not transformed and _onednn_works()


@cache
def _onednn_works() -> bool:
    """Whether this torch build has the oneDNN inner product and it agrees with addmm."""
    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    a, weight = (torch.randn(shape, generator=generator) for shape in ((3, 5), (4, 5)))
    bias = torch.randn(4, generator=generator)
    add = torch.randn(3, 4, generator=generator)
    try:
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, 3)
            with_bias = torch.ops.mkldnn._linear_pointwise(a, packed, bias, "none", [], "")
            with_add = torch.ops.mkldnn._linear_pointwise.binary(a, add, packed, None, "add")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return all(
        torch.allclose(got, torch.addmm(expected, a, weight.t()), rtol=1e-5, atol=1e-5)
        for got, expected in ((with_bias, bias), (with_add, add))
    )
