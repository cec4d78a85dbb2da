"""One root for every error rnnspec raises; each also subclasses the matching builtin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class RnnSpecError(Exception):
    """Root of all rnnspec errors."""


@dataclass(frozen=True)
class Location:
    """A place in a spec file: 1-based line and column."""

    path: Path | str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class SpecError(RnnSpecError, ValueError):
    """A spec file is wrong; the message starts with file:line:column."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class SpecSyntaxError(SpecError):
    """The spec text cannot be parsed (TOML or equation notation)."""


class SpecSemanticError(SpecError):
    """The spec parses but does not describe a valid cell (unknown symbol, shape, ...)."""


class CodegenError(RnnSpecError, RuntimeError):
    """The generator cannot produce code for a valid spec."""


class ConfigError(RnnSpecError, ValueError):
    """An RNN configuration is invalid or unsupported."""


class ImplementationError(RnnSpecError, RuntimeError):
    """A candidate implementation cannot be loaded or misbehaves outside a check."""

    def __init__(self, message: str, implementation: str | None = None) -> None:
        self.implementation = implementation
        super().__init__(f"{implementation}: {message}" if implementation else message)


class Unsupported(RnnSpecError):
    """A case lies outside what the candidate supports: the check is skipped with the reason.

    The kit raises it for what a candidate does not declare; a candidate (its factory,
    loader or call) may raise it too, ``raise rnnspec.Unsupported("no packed input")``,
    for what it finds it cannot run.
    """


class UnknownImplementationError(ImplementationError, LookupError):
    """No implementation is registered under the requested name."""


class NotInstalled(ImplementationError, ImportError):
    """A built-in implementation's library is missing: the message says what to install."""
