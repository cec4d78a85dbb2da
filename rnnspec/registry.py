"""Find implementations: entry points of ``rnnspec.implementations`` or ``module:attribute``.

Nothing an installed package registers is trusted: two entry points with one name are
refused (the built-ins ``torch`` and ``reference`` win over any other), and an entry point
whose import raises anything, ``SystemExit`` and ``KeyboardInterrupt`` included, is named
with its error instead of stopping the caller.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from rnnspec.errors import ImplementationError, NotInstalled, UnknownImplementationError
from rnnspec.protocol import Implementation

GROUP = "rnnspec.implementations"
BUILTINS = {
    "torch": "rnnspec.implementations:torch_nn",
    "reference": "rnnspec.implementations:reference",
    "flax": "rnnspec.adapters.flax_cells:linen",
    "flax-optimized": "rnnspec.adapters.flax_cells:linen_optimized",
    "flax-nnx": "rnnspec.adapters.flax_cells:nnx_cells",
    "flax-nnx-optimized": "rnnspec.adapters.flax_cells:nnx_optimized",
    "equinox": "rnnspec.adapters.equinox_cells:equinox",
}
FILE_SUFFIXES = {".py", ".onnx", ".keras", ".h5", ".pt", ".pth", ".pkl", ".json", ".toml"}


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


def _entries() -> dict[str, list[EntryPoint]]:
    """Entry points by name, each (name, target) once, sorted by target."""
    found: dict[str, dict[str, EntryPoint]] = {}
    for entry in entry_points(group=GROUP):
        found.setdefault(entry.name, {}).setdefault(entry.value, entry)
    return {name: [found[name][t] for t in sorted(found[name])] for name in sorted(found)}


def _chosen(name: str, entries: list[EntryPoint]) -> tuple[EntryPoint | None, str | None]:
    """The entry point that ``name`` runs, or None and why the name is refused; with a
    duplicate built-in name, the built-in, and why the others are refused."""
    if len(entries) == 1:
        return entries[0], None
    targets = " and ".join(repr(entry.value) for entry in entries)
    builtin = next((entry for entry in entries if entry.value == BUILTINS.get(name)), None)
    if builtin is not None:
        return builtin, f"{name!r} is rnnspec's built-in {builtin.value!r}; rename this one"
    return None, (
        f"two entry points are named {name!r}: {targets}; refusing both (uninstall one, "
        "or pass package.module:attribute)"
    )


def discover() -> list[Registered]:
    """Every registered implementation, loaded; one that fails to load, or whose name is
    taken, carries its error."""
    found = []
    for name, entries in _entries().items():
        chosen, refusal = _chosen(name, entries)
        for entry in entries:
            if entry is not chosen:
                found.append(Registered(name, entry.value, None, f"refused: {refusal}"))
                continue
            try:
                found.append(Registered(name, entry.value, _load_entry(entry), None))
            except NotInstalled as missing:
                message = str(missing).removeprefix(f"{name}: ")
                found.append(Registered(name, entry.value, None, message, installed=False))
            except BaseException as error:  # noqa: B036 - a broken plugin must not stop us
                found.append(Registered(name, entry.value, None, _describe(error)))
    return found


def load(name_or_path: str) -> Implementation:
    """An entry point name, ``package.module:attribute`` for an unregistered candidate, or
    the path of a saved model (``.onnx``, ``.keras``)."""
    entries = _entries()
    if name_or_path in entries:
        chosen, refusal = _chosen(name_or_path, entries[name_or_path])
        if chosen is None:
            raise ImplementationError(str(refusal), name_or_path)
        entry = chosen
        return _guarded(
            lambda: _load_entry(entry), f"entry point {entry.value!r} failed to load", name_or_path
        )
    if _is_path(name_or_path):
        return _load_file(Path(name_or_path), sorted(entries))
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


def _is_path(name: str) -> bool:
    """A file system path rather than a name: a separator, a file suffix, or a file."""
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    path = Path(name)
    suffixes = FILE_SUFFIXES | set(FILE_LOADERS)
    return any(s in name for s in separators) or path.suffix in suffixes or path.is_file()


def _load_file(path: Path, registered: list[str]) -> Implementation:
    loader = FILE_LOADERS.get(path.suffix)
    if loader is None:
        readable = ", ".join(sorted(FILE_LOADERS))
        raise ImplementationError(
            "is a file path, not an implementation: --impl takes an entry point name "
            f"(registered: {', '.join(registered) or 'none'}) or package.module:attribute "
            f"(put the module's directory on PYTHONPATH); model files read: {readable}",
            str(path),
        )
    return _guarded(lambda: loader(path), f"cannot read {path.suffix} file", str(path))


def _onnx_file(path: Path) -> Implementation:
    from rnnspec.adapters import onnx_file

    return onnx_file.implementation(path)


def _keras_file(path: Path) -> Implementation:
    from rnnspec.adapters import keras

    return keras.file_implementation(path)


# Loaders for a saved model given as --impl (a fixed-weight candidate), by suffix.
FILE_LOADERS: dict[str, Callable[[Path], Implementation]] = {
    ".onnx": _onnx_file,
    ".keras": _keras_file,
}


def _guarded(load: Callable[[], Implementation], what: str, name: str) -> Implementation:
    """Run ``load``; anything the candidate's code raises becomes an ImplementationError."""
    try:
        return load()
    except ImplementationError:
        raise
    except BaseException as error:  # noqa: B036 - import or factory code can raise anything
        raise ImplementationError(f"{what}: {_describe(error)}", name) from error


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


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
