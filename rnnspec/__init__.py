"""rnnspec: a conformance kit for recurrent neural networks."""

from rnnspec.config import RNNConfig
from rnnspec.errors import (
    ConfigError,
    ImplementationError,
    RnnSpecError,
    SpecError,
    SpecSemanticError,
    SpecSyntaxError,
    Unsupported,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "ImplementationError",
    "RNNConfig",
    "RnnSpecError",
    "SpecError",
    "SpecSemanticError",
    "SpecSyntaxError",
    "Unsupported",
]
