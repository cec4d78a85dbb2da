"""The conformance checks as plain functions, one module per category.

Each check takes ``(implementation, case, record)``: it raises
:class:`~rnnspec.harness.Unsupported` when the candidate does not declare what the case
needs, :class:`~rnnspec.compare.CheckFailure` when the candidate is wrong, and passes
every :class:`~rnnspec.compare.Comparison` it made to ``record`` for the reports.
Each module also offers ``cases(cells)``: the cases the suite runs for those cells, in
``torch.nn``'s full envelope. The suite fits them to each candidate's declared envelope
with :func:`rnnspec.cases.for_envelope`; a provider marked with
:func:`rnnspec.cases.needs` keeps what its check exists to test (an h0, a dtype).
"""

from __future__ import annotations

from collections.abc import Callable

from rnnspec.compare import Comparison

Record = Callable[[Comparison], None]
CATEGORIES = (
    "shapes",
    "layout",
    "parity",
    "gradients",
    "device",
    "dtype",
    "robustness",
    "speed",
    "transforms",
)


def ignore(comparison: Comparison) -> None:
    """A ``record`` for callers that do not keep comparisons."""
