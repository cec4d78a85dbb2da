"""``rnnspec show [SPEC] [--format text|markdown|latex]``: a cell's equations."""

from __future__ import annotations

import argparse
from typing import Any

from rnnspec import render, spec
from rnnspec.commands import list_specs
from rnnspec.errors import ConfigError


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "show",
        help="render a spec's equations (no SPEC: list the shipped specs)",
        description="Render the equations of a cell: a shipped kind with an optional variant "
        "(lstm, gru:reset_before, elman:relu), 'composition', or a path to a spec file. "
        "Without SPEC, list the shipped specs and their variants.",
    )
    parser.add_argument("spec", nargs="?", metavar="SPEC")
    parser.add_argument("--format", choices=render.FORMATS, default="text")
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    if args.spec in (None, "composition") and args.format != "text":
        raise ConfigError(f"--format {args.format} renders a cell's equations; name a SPEC")
    if args.spec is None:
        return list_specs.execute(args)
    if args.spec == "composition":
        print(render.render_composition(spec.composition()), end="")
        return 0
    print(render.render(spec.resolve(args.spec), args.format), end="")
    return 0
