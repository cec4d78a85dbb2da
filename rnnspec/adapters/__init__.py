"""Built-in implementations for other libraries, each imported only when asked for.

``onnxruntime`` (ONNX Runtime's RNN, GRU and LSTM operators), ``keras`` (Keras' SimpleRNN,
GRU and LSTM layers on the active backend) and file candidates (``model.onnx``,
``model.keras``). A module here imports its library inside functions, so that
``rnnspec list`` can say "not installed" instead of failing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from rnnspec.errors import NotInstalled


def require(module: str, extra: str, name: str) -> ModuleType:
    """``module`` imported, or :class:`NotInstalled` saying ``pip install rnnspec[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise NotInstalled(
            f"not installed: pip install rnnspec[{extra}] ({error})", name
        ) from error
