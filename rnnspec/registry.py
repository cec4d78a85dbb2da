"""Find implementations: entry points of ``rnnspec.implementations`` or ``module:attribute``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from rnnspec.errors import ImplementationError, UnknownImplementationError
from rnnspec.protocol import Implementation

GROUP = "rnnspec.implementations"


@dataclass(frozen=True)
class Registered:
    """One entry point: its implementation, or the error that loading it raised."""

    name: str
    target: str
    implementation: Implementation | None
    error: str | None


def registered_names() -> list[str]:
    return sorted({entry.name for entry in entry_points(group=GROUP)})


def discover() -> list[Registered]:
    """Every registered implementation, loaded; one that fails to load carries its error."""
    found = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            found.append(Registered(entry.name, entry.value, _load_entry(entry), None))
        except Exception as error:  # a broken plugin must not hide the others
            found.append(
                Registered(entry.name, entry.value, None, f"{type(error).__name__}: {error}")
            )
    return found


def load(name_or_path: str) -> Implementation:
    """An entry point name, or ``package.module:attribute`` for an unregistered candidate."""
    entries = {entry.name: entry for entry in entry_points(group=GROUP)}
    if name_or_path in entries:
        entry = entries[name_or_path]
        return _guarded(
            lambda: _load_entry(entry), f"entry point {entry.value!r} failed to load", name_or_path
        )
    if ":" in name_or_path:
        module_name, _, attribute = name_or_path.partition(":")
        return _guarded(
            lambda: _coerce(getattr(importlib.import_module(module_name), attribute), name_or_path),
            "cannot import or build it",
            name_or_path,
        )
    known = ", ".join(sorted(entries)) or "none"
    raise UnknownImplementationError(
        f"unknown implementation; registered: {known} (or pass package.module:attribute)",
        name_or_path,
    )


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
