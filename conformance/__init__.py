"""The rnnspec conformance suite: ``pytest conformance --impl NAME``.

:func:`run` offers the same suite as a plain function, for downstream test suites.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pytest11 plugin imports this package in every pytest run: stay light
    from rnnspec.protocol import Implementation

PACKAGE_DIR = Path(__file__).resolve().parent


class _Provide:
    """Hands an Implementation object to the plugin without an entry point."""

    def __init__(self, implementation: Implementation) -> None:
        self.rnnspec_implementation = implementation


def run(implementation: str | Implementation, *pytest_args: str) -> int:
    """Run the suite on a registered name or an Implementation; returns pytest's exit code.

    ``run("torch", "-m", "parity", "-q")`` equals ``pytest conformance --impl torch -m parity -q``.
    The caller's process state (torch and NumPy modes, random generators, warning filters)
    is as it was afterwards, whatever the candidate did.
    """
    import pytest

    from rnnspec.harness import preserved_global_state
    from rnnspec.protocol import Implementation

    args = [str(PACKAGE_DIR), "-p", "no:cacheprovider", *pytest_args]
    with preserved_global_state():
        if isinstance(implementation, Implementation):
            return int(pytest.main(args, plugins=[_Provide(implementation)]))
        return int(pytest.main([*args, "--impl", implementation]))
