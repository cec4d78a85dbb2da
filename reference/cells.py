"""Find the generated layer function of a cell for a backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

from rnnspec import codegen
from rnnspec.spec import Cell, load, shipped_specs

LayerFunction = Callable[..., tuple[Any, tuple[Any, ...]]]


def layer_function(cell: Cell, backend: str) -> LayerFunction:
    """The shipped generated module's function, or one generated in memory for other specs."""
    shipped = shipped_specs().get(cell.kind)
    if shipped is not None and shipped.digest == cell.digest:
        module = importlib.import_module(f"reference.{backend}.{cell.kind}")
    else:
        module = _generated(str(cell.path), cell.digest, backend)
    function: LayerFunction = getattr(module, cell.function_name)
    return function


@cache
def _generated(path: str, digest: str, backend: str) -> Any:
    spec = load(path)
    return codegen.load_module(spec, backend)
