"""Built-in implementations for other libraries, each imported only when asked for.

``onnxruntime`` (ONNX Runtime's RNN, GRU and LSTM operators), ``keras`` (Keras' SimpleRNN,
GRU and LSTM layers on the active backend), file candidates (``model.onnx``,
``model.keras``), and the JAX libraries' cells: ``flax_cells`` (Flax linen and nnx) and
``equinox_cells``, both stacked into ``torch.nn``'s call convention by ``jax_network``.
A module here imports its library inside functions, so that ``rnnspec list`` can say
"not installed" instead of failing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from rnnspec.errors import NotInstalled
from rnnspec.protocol import Capabilities


def require(module: str, extra: str, name: str) -> ModuleType:
    """``module`` imported, or :class:`NotInstalled` saying ``pip install rnnspec[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise NotInstalled(
            f"not installed: pip install rnnspec[{extra}] ({error})", name
        ) from error


def not_installed(extra: str, name: str, *modules: str) -> None:
    """Raise :class:`NotInstalled` unless every one of ``modules`` imports."""
    for module in modules:
        require(module, extra, name)


def runtime_capabilities(
    cells: Iterable[str], dtype: str = "float32", gradients: bool = False, **narrower: Any
) -> Capabilities:
    """What a built-in that runs outside torch on the CPU declares: ``cells`` in one
    ``dtype``, no ``proj_size``, no dropout between layers, no torch transforms (there is
    no torch module to transform), gradients only where given; ``narrower`` declares
    the rest (``packed=False``, ...)."""
    return Capabilities(
        cells=frozenset(cells),
        proj_size=False,
        dropout=False,
        dtypes=frozenset({dtype}),
        devices=frozenset({"cpu"}),
        gradients=gradients,
        transforms=frozenset(),
        **narrower,
    )
