"""The conformance checks as plain functions, one module per category.

Each check takes ``(implementation, case, record)``: it raises
:class:`~rnnspec.errors.Unsupported` when the candidate does not declare what the case
needs, :class:`~rnnspec.compare.CheckFailure` when the candidate is wrong, and passes
every :class:`~rnnspec.compare.Comparison` it made to ``record`` for the reports. Each
check has a case provider ``provider(cells)`` beside it: the cases the suite runs for those
cells, in ``torch.nn``'s full envelope. The suite fits them to each candidate's declared
envelope with :func:`rnnspec.cases.for_envelope`; a provider marked with
:func:`rnnspec.cases.needs` keeps what its check exists to test (an h0, a dtype).

:mod:`rnnspec.checks.suite` declares every check (category, test name, function, provider).
The category modules never import each other: what they share is in
:mod:`rnnspec.checks.assertions` and :mod:`rnnspec.checks.autodiff`.
"""

from __future__ import annotations

from collections.abc import Callable

from rnnspec.compare import Comparison

Record = Callable[[Comparison], None]


def ignore(comparison: Comparison) -> None:
    """A ``record`` for callers that do not keep comparisons."""
