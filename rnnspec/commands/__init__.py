"""The ``rnnspec`` subcommands, one module each.

Each module's ``add_parser(commands)`` adds its parser and sets ``execute``, the function
that runs the command: it parses nothing further, calls the domain modules, prints, and
returns the exit status. The logic stays in the domain modules; :mod:`rnnspec.cli` only
assembles the parser and turns an :class:`~rnnspec.errors.RnnSpecError` into exit status 2.
"""

from rnnspec.commands import (
    diagnose,
    generate,
    list_implementations,
    list_specs,
    matrix,
    report,
    show,
)

MODULES = (show, list_specs, list_implementations, diagnose, report, matrix, generate)
"""In the order ``rnnspec --help`` lists them."""
