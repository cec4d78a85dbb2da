"""``rnnspec list-specs``: the shipped specs and their variants."""

from __future__ import annotations

import argparse
from typing import Any

from rnnspec import render


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("list-specs", help="list the shipped specs and variants")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    print(render.shipped_cells(), end="")
    return 0
