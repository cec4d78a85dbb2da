"""The ``rnnspec`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rnnspec import bench_report, codegen, diagnosis, listing, render, spec
from rnnspec.errors import RnnSpecError

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"
Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except RnnSpecError as error:
        print(f"rnnspec: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnspec", description="Declarative RNN specs, generated references, conformance."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    show = commands.add_parser(
        "show",
        help="render a spec's equations (no SPEC: list the shipped specs)",
        description="Render the equations of a cell: a shipped kind with an optional variant "
        "(lstm, gru:reset_before, elman:relu), 'composition', or a path to a spec file. "
        "Without SPEC, list the shipped specs and their variants.",
    )
    show.add_argument("spec", nargs="?", metavar="SPEC")
    show.add_argument("--format", choices=render.FORMATS, default="text")
    show.set_defaults(run=_show)

    list_specs = commands.add_parser("list-specs", help="list the shipped specs and variants")
    list_specs.set_defaults(run=_list_specs)

    listing.add_command(commands)
    diagnosis.add_command(commands)
    bench_report.add_command(commands)

    generate = commands.add_parser(
        "generate",
        help="write reference/ from the specs",
        description="Write the generated reference modules (one per cell kind per backend). "
        "With --check, write nothing and exit 1 when the files on disk are stale.",
    )
    generate.add_argument("--check", action="store_true", help="exit 1 if reference/ is stale")
    generate.add_argument(
        "--out",
        type=Path,
        default=REFERENCE_DIR,
        help="the reference package directory (default: %(default)s)",
    )
    generate.set_defaults(run=_generate)
    return parser


def _show(args: argparse.Namespace) -> int:
    if args.spec is None:
        return _list_specs(args)
    if args.spec == "composition":
        print(render.render_composition(spec.composition()), end="")
        return 0
    print(render.render(spec.resolve(args.spec), args.format), end="")
    return 0


def _list_specs(args: argparse.Namespace) -> int:
    for kind, loaded in spec.shipped_specs().items():
        for variant, cell in loaded.cells.items():
            label = cell.name if not cell.is_base else f"{kind} ({variant})"
            torch_name = f"torch.nn.{cell.torch.module}" if cell.torch else "no torch.nn equivalent"
            print(f"{label:24} {cell.title}; {torch_name}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    files = codegen.expected_files(spec.shipped_specs(), args.out)
    stale = [
        path
        for path, text in files.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if args.check:
        for path in stale:
            print(f"stale: {path}")
        print(
            "reference/ is up to date"
            if not stale
            else f"{len(stale)} stale file(s); run `rnnspec generate`"
        )
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path}")
    print(f"{len(files) - len(stale)} file(s) already up to date")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
