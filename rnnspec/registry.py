"""Find implementations: entry points of ``rnnspec.implementations`` or ``module:attribute``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from rnnspec.errors import ImplementationError, NotInstalled, UnknownImplementationError
from rnnspec.protocol import Implementation

GROUP = "rnnspec.implementations"
FILE_SUFFIXES = (".onnx", ".keras")


@dataclass(frozen=True)
class Registered:
    """One entry point: its implementation, or the error that loading it raised
    (``installed=False``: its library is missing, the error says what to install)."""

    name: str
    target: str
    implementation: Implementation | None
    error: str | None
    installed: bool = True


def registered_names() -> list[str]:
    return sorted({entry.name for entry in entry_points(group=GROUP)})


def discover() -> list[Registered]:
    """Every registered implementation, loaded; one that fails to load carries its error."""
    found = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found.append(Registered(entry.name, entry.value, _load_entry(entry), None))
        except NotInstalled as missing:
            message = str(missing).removeprefix(f"{entry.name}: ")
            found.append(Registered(entry.name, entry.value, None, message, installed=False))
        except Exception as error:  # a broken plugin must not hide the others
            found.append(
                Registered(entry.name, entry.value, None, f"{type(error).__name__}: {error}")
            )
    return found


def load(name_or_path: str) -> Implementation:
    """An entry point name, ``package.module:attribute`` for an unregistered candidate, or
    the path of a saved model (``.onnx``, ``.keras``)."""
    entries = {entry.name: entry for entry in entry_points(group=GROUP)}
    if name_or_path in entries:
        entry = entries[name_or_path]
        return _guarded(
            lambda: _load_entry(entry), f"entry point {entry.value!r} failed to load", name_or_path
        )
    if name_or_path.endswith(FILE_SUFFIXES):
        return _guarded(lambda: load_file(Path(name_or_path)), "cannot read it", name_or_path)
    if ":" in name_or_path:
        module_name, _, attribute = name_or_path.partition(":")
        return _guarded(
            lambda: _coerce(getattr(importlib.import_module(module_name), attribute), name_or_path),
            "cannot import or build it",
            name_or_path,
        )
    known = ", ".join(sorted(entries)) or "none"
    raise UnknownImplementationError(
        f"unknown implementation; registered: {known} (or pass package.module:attribute, "
        "or a model.onnx or model.keras file)",
        name_or_path,
    )


def load_file(path: Path) -> Implementation:
    """A fixed-weight candidate for a saved model: ``model.onnx`` or ``model.keras``."""
    if path.suffix == ".onnx":
        from rnnspec.adapters import onnx_file

        return onnx_file.implementation(path)
    from rnnspec.adapters import keras

    return keras.file_implementation(path)


def _guarded(load: Callable[[], Implementation], what: str, name: str) -> Implementation:
    """Run ``load``; any error from the candidate's code becomes an ImplementationError."""
    try:
        return load()
    except ImplementationError:
        raise
    except Exception as error:  # the candidate's import or factory code can raise anything
        raise ImplementationError(f"{what}: {type(error).__name__}: {error}", name) from error


def _load_entry(entry: EntryPoint) -> Implementation:
    return _coerce(entry.load(), entry.name)


def _coerce(target: Any, name: str) -> Implementation:
    """Accept an Implementation, or a plain function of no arguments that returns one."""
    if inspect.isfunction(target) and not inspect.signature(target).parameters:
        target = target()
    if not isinstance(target, Implementation):
        raise ImplementationError(
            f"resolves to {type(target).__name__}, expected rnnspec.protocol.Implementation "
            "or a function of no arguments returning one (for a torch.nn-style class, "
            "register Implementation.from_module(TheClass))",
            name,
        )
    return target
