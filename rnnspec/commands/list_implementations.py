"""``rnnspec list [--strict]``: the registered implementations and what each declares.

The listing itself worked, so the exit status is 0 unless ``--strict`` asks for 1 on any
broken entry point (for CI that wants to catch a broken install).
"""

from __future__ import annotations

import argparse
from typing import Any

from rnnspec import listing
from rnnspec.registry import GROUP, discover


def add_parser(commands: Any) -> None:
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
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    entries = discover()
    print(listing.render(entries), end="")
    return 1 if args.strict and listing.broken(entries) else 0
