"""Matrix-product FLOPs of a network, derived from its cell's equations.

Every ``param @ operand`` of the equations is a matrix-vector product per batch entry and
step; products of one parameter with the same operand (the gates of a stacked weight) are
one matrix product, as the generated reference computes them. Products whose operand is
the input ``x`` do not depend on the state, so they are one large product over all steps.
A projected state (``proj_size``) adds its projection every step. Element-wise gate math
is not counted: the limit this is compared with is the machine's matrix-product speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnspec import render
from rnnspec.config import RNNConfig
from rnnspec.notation import BinOp, Block, Expr, Name
from rnnspec.spec import INPUT, Cell, Parameter

BACKWARD_FACTOR = 2
"""A matrix product's backward pass is two products of its size (input and weight grads)."""


@dataclass(frozen=True)
class Product:
    """``(rows, inner) @ (inner, cols)`` run ``count`` times in one layer and direction."""

    what: str
    rows: int
    inner: int
    cols: int
    count: int
    recurrent: bool

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.rows, self.inner, self.cols)

    @property
    def flops(self) -> int:
        return 2 * self.rows * self.inner * self.cols * self.count


def cell_products(cell: Cell) -> list[tuple[Parameter, Expr, tuple[str, ...]]]:
    """Each distinct (parameter, operand) product of ``cell`` with the blocks it uses."""
    params = {param.name: param for param in cell.parameters}
    found: dict[tuple[str, Expr], list[str]] = {}
    for equation in cell.equations:
        for node in equation.expr.walk():
            if not (isinstance(node, BinOp) and node.op == "@"):
                continue
            if isinstance(node.left, Block):
                name, block = node.left.param, node.left.gate
            elif isinstance(node.left, Name) and node.left.id in params:
                name, block = node.left.id, ""
            else:
                continue
            blocks = found.setdefault((name, node.right), [])
            if block not in blocks:
                blocks.append(block)
    return [(params[name], operand, tuple(blocks)) for (name, operand), blocks in found.items()]


def layer_products(config: RNNConfig, layer: int, steps: int, batch: int) -> list[Product]:
    """The matrix products one direction of ``layer`` runs over ``steps`` x ``batch``."""
    cell = config.resolve()
    sizes = config.sizes(layer)
    products = []
    for param, operand, blocks in cell_products(cell):
        block_rows, inner = (sizes[dim] for dim in param.block_shape)
        cols = block_rows * len(blocks)
        label = f"{param.name}[{','.join(blocks)}]" if any(blocks) else param.name
        what = f"{label} @ {render._text(operand, cell, 3)}"
        if operand == Name(INPUT):
            products.append(Product(what, steps * batch, inner, cols, 1, recurrent=False))
        else:
            products.append(Product(what, batch, inner, cols, steps, recurrent=True))
    for state in cell.states:
        if state.projection and config.proj_size:
            products.append(
                Product(
                    f"{state.projection} @ {state.name}",
                    batch,
                    config.hidden_size,
                    config.proj_size,
                    steps,
                    recurrent=True,
                )
            )
    return products


def products(config: RNNConfig, steps: int, batch: int) -> list[Product]:
    """Every matrix product of the network: all layers, all directions."""
    return [
        product
        for layer in range(config.num_layers)
        for _ in range(config.num_directions)
        for product in layer_products(config, layer, steps, batch)
    ]


def forward_flops(config: RNNConfig, steps: int, batch: int) -> int:
    return sum(product.flops for product in products(config, steps, batch))


def passes(mode: str) -> int:
    """How many forward passes' worth of matrix products ``mode`` runs."""
    if mode == "forward":
        return 1
    if mode == "forward_backward":
        return 1 + BACKWARD_FACTOR
    raise ValueError(f"mode must be 'forward' or 'forward_backward', got {mode!r}")


def flops(config: RNNConfig, steps: int, batch: int, mode: str) -> int:
    """FLOPs of ``mode`` ("forward" or "forward_backward")."""
    return passes(mode) * forward_flops(config, steps, batch)
