"""``rnnspec list``: every registered implementation and what it declares it supports.

An entry point that fails to load is listed as BROKEN with its import error; the others
are still listed. The listing itself worked, so the exit status is 0 unless ``--strict``
asks for 1 on any broken entry (for CI that wants to catch a broken install).
"""

from __future__ import annotations

import argparse
from typing import Any

from rnnspec.protocol import Capabilities, Implementation
from rnnspec.registry import GROUP, Registered, discover

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


def add_command(commands: Any) -> None:
    """Add ``list`` to the ``rnnspec`` subcommands."""
    parser = commands.add_parser(
        "list",
        help="list the registered implementations and what each supports",
        description=f"List every implementation registered under the entry point group "
        f"{GROUP} (the names --impl accepts) with its declared capabilities: cells, "
        "layers, dtypes, devices and flags. An entry point that fails to load is shown as "
        "BROKEN with its error; the exit status is still 0 unless --strict is given.",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when an entry point fails to load"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    entries = discover()
    print(render(entries), end="")
    broken = any(entry.error is not None and entry.installed for entry in entries)
    return 1 if args.strict and broken else 0


def render(entries: list[Registered]) -> str:
    """The listing as text: one block per entry point, broken ones included."""
    if not entries:
        return f"no implementations registered (entry point group {GROUP})\n"
    broken = sum(entry.error is not None and entry.installed for entry in entries)
    header = f"{len(entries)} implementation(s) registered under {GROUP}"
    lines = [header + (f", {broken} BROKEN" if broken else ""), ""]
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
