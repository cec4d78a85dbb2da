"""``rnnspec report BENCH.json [--out DIR] [--conformance REPORT.json] ...``: the speed
(and conformance) report as Markdown and HTML with plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rnnspec import bench_report


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="write the speed (and conformance) report: Markdown and HTML with plots",
        description="Render pytest-benchmark JSON from `pytest conformance --impl NAME -m speed "
        f"--benchmark-json BENCH.json` into DIR/{bench_report.BASENAME}.md and "
        f"DIR/{bench_report.BASENAME}.html (plots embedded). Files there that rnnspec did not "
        "write are kept unless --force.",
    )
    parser.add_argument("bench", type=Path, metavar="BENCH.json")
    parser.add_argument("--out", type=Path, default=Path("."), metavar="DIR")
    parser.add_argument(
        "--conformance",
        type=Path,
        metavar="REPORT.json",
        help="a conformance report (from --conformance-report) to include",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite files rnnspec did not write"
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="EARLIER.json",
        help="an earlier run's benchmark JSON: how far each ratio moved from it",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    conformance = args.conformance
    if conformance is not None and not conformance.suffix:
        conformance = conformance.with_suffix(".json")
    for path in bench_report.write(args.bench, args.out, conformance, args.force, args.against):
        print(f"wrote {path}")
    return 0
