"""Shapes: output, h_n and c_n have torch.nn's shapes in every input layout.

Sizes are chosen so that no two dimensions coincide (T=5, B=3, L*D in {1, 2, 6}, input 10,
hidden 9, projection 7): a transposed state, ``batch_first`` applied to h_n or a squeezed
dimension always changes the shape. B=1 cases catch a ``.squeeze()`` that eats the batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rnnspec.cases import Case, layout_case
from rnnspec.checks import Record
from rnnspec.checks.assertions import check_shape
from rnnspec.diagnosis import diagnosed
from rnnspec.harness import build, require, run_quietly
from rnnspec.protocol import Implementation
from rnnspec.spec import supports_proj

SIZES: dict[str, Any] = dict(steps=5, batch=3, lengths=(2, 5, 1), input_size=10, hidden_size=9)
PROJ = 7
STACKS = ((1, False), (1, True), (3, True))
LAYOUTS = ("time-major", "batch_first", "unbatched", "packed", "packed batch_first")


def _case(cell: str, layers: int, bidirectional: bool, layout: str, proj: int = 0) -> Case:
    return layout_case(
        cell, layers, bidirectional, layout, proj_size=proj, given_state=layers != 3, **SIZES
    )


def cases(cells: Iterable[str]) -> list[Case]:
    """Every cell over stacks x layouts (and projections), plus B=1 in both batch layouts."""
    found: list[Case] = []
    for cell in cells:
        projections = (0, PROJ) if supports_proj(cell) else (0,)
        for proj in projections:
            for layers, bidirectional in STACKS[1:] if proj else STACKS:
                found.extend(_case(cell, layers, bidirectional, layout, proj) for layout in LAYOUTS)
        for layout in ("time-major", "batch_first"):
            found.append(_case(cell, 2, True, layout).replace(batch=1))
    return found


@diagnosed
def check_shapes(impl: Implementation, case: Case, record: Record) -> None:
    """Output, h_n (and c_n) have the shapes torch.nn gives for the case's layout."""
    __tracebackhide__ = True
    require(impl, case)
    got = run_quietly(build(impl, case))
    label = case.label()
    for (what, shape), value in zip(
        case.result_shapes().items(), (got.output, *got.states), strict=True
    ):
        check_shape(value, shape, what, label)
