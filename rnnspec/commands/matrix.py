"""``rnnspec matrix --impl NAME ... --out DIR [-- PYTEST_ARGS]``: a compatibility table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rnnspec import matrix


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "matrix",
        help="run the suite on several implementations and write a compatibility table",
        description="Run `pytest --pyargs conformance --impl NAME` for each --impl (one "
        "process each) and write DIR/matrix.md and DIR/matrix.html: implementation x cell x "
        "category, passed/failed/skipped, and the first diagnosis of each failing cell. "
        "Arguments after -- go to every pytest run (e.g. -- -n 2 --xfails FILE).",
    )
    parser.add_argument("--impl", action="append", required=True, metavar="NAME")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    given = args.pytest_args
    out: Path = args.out
    runs = matrix.write(out, args.impl, given[1:] if given[:1] == ["--"] else given)
    for one in runs:
        total = one.total()
        print(
            f"{one.name}: {total['passed']} passed, {total['failed']} failed, "
            f"{total['skipped']} skipped in {one.seconds:.1f} s"
            + (f" ({one.error})" if one.error else "")
        )
    print(f"wrote {out / 'matrix.md'} and {out / 'matrix.html'}")
    return 0 if all(one.exit_code == 0 for one in runs) else 1
