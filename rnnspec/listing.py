"""The listing of every registered implementation and what it declares it supports.

An entry point that fails to load is listed as BROKEN with its import error; the others
are still listed (``rnnspec list``, :mod:`rnnspec.commands.list_implementations`).
"""

from __future__ import annotations

from rnnspec.protocol import Capabilities, Implementation
from rnnspec.registry import GROUP, Registered

FLAGS = (
    ("unidirectional", "unidirectional"),
    ("bidirectional", "bidirectional"),
    ("no_bias", "bias=False"),
    ("time_major", "time-major"),
    ("batch_first", "batch_first"),
    ("proj_size", "proj_size"),
    ("packed", "packed"),
    ("batched", "batched"),
    ("unbatched", "unbatched"),
    ("initial_state", "h0"),
    ("dropout", "dropout"),
    ("gradients", "gradients"),
)


def broken(entries: list[Registered]) -> int:
    """How many installed entry points failed to load."""
    return sum(entry.error is not None and entry.installed for entry in entries)


def render(entries: list[Registered]) -> str:
    """The listing as text: one block per entry point, broken ones included."""
    if not entries:
        return f"no implementations registered (entry point group {GROUP})\n"
    failed = broken(entries)
    header = f"{len(entries)} implementation(s) registered under {GROUP}"
    lines = [header + (f", {failed} BROKEN" if failed else ""), ""]
    for entry in entries:
        lines.append(f"{entry.name}  ({entry.target})")
        if not entry.installed:
            lines.append(f"  {entry.error}")
        elif entry.implementation is None:
            lines.append(f"  BROKEN     {entry.error}")
        else:
            lines.extend(f"  {line}" for line in _describe(entry.implementation))
        lines.append("")
    return "\n".join(lines)


def _describe(impl: Implementation) -> list[str]:
    caps: Capabilities = impl.effective_capabilities
    supported = [label for field, label in FLAGS if getattr(caps, field)]
    missing = [label for field, label in FLAGS if not getattr(caps, field)]
    rows = [
        ("about", impl.description or "-"),
        ("framework", impl.framework),
        ("cells", ", ".join(sorted(caps.cells)).replace("*", "* (every spec)")),
        ("layers", "any" if caps.max_layers is None else f"up to {caps.max_layers}"),
        ("dtypes", ", ".join(sorted(caps.dtypes))),
        ("computes", "in the input's dtype" if caps.precision is None else caps.precision),
        ("devices", ", ".join(sorted(caps.devices))),
        ("supports", ", ".join(supported) or "-"),
        ("lacks", ", ".join(missing) or "-"),
    ]
    return [f"{key:10} {value}" for key, value in rows]
