"""The ``rnnspec`` command line: the parser of every command in :mod:`rnnspec.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rnnspec.commands import MODULES
from rnnspec.errors import RnnSpecError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "execute"):
        parser.print_help()
        return 2
    try:
        return int(args.execute(args))
    except RnnSpecError as error:
        print(f"rnnspec: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnspec", description="Declarative RNN specs, generated references, conformance."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in MODULES:
        module.add_parser(commands)
    return parser


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
