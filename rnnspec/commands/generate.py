"""``rnnspec generate [--check] [--out DIR]``: write reference/ from the specs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rnnspec import generated


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "generate",
        help="write reference/ from the specs",
        description="Write the generated reference modules (one per cell kind per backend). "
        "With --check, write nothing and exit 1 when the files on disk are stale. Files in the "
        "way that rnnspec did not generate are never overwritten.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if reference/ is stale")
    parser.add_argument(
        "--out",
        type=Path,
        default=generated.REFERENCE_DIR,
        help="the reference package directory (default: %(default)s)",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    files = generated.expected_files(args.out)
    stale = generated.stale_files(files, args.out)
    if args.check:
        for path in stale:
            print(f"stale: {path}")
        print(
            "reference/ is up to date"
            if not stale
            else f"{len(stale)} stale file(s); run `rnnspec generate`"
        )
        return 1 if stale else 0
    generated.check_replaceable(stale)
    for path in stale:
        generated.write_inside(args.out, path.relative_to(args.out), files[path])
        print(f"wrote {path}")
    print(f"{len(files) - len(stale)} file(s) already up to date")
    return 0
