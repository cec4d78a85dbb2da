"""The checks of :mod:`rnnspec.checks.suite` as pytest tests.

Each ``conformance/test_<category>.py`` holds ``tests(category)``: one test function per
check, named as the check, marked with its category, ``cases(provider=...)`` (the plugin
parametrizes ``case`` from it) and ``slow`` where declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rnnspec.checks.suite import Check, checks


def tests(category: str) -> dict[str, Callable[..., None]]:
    """The category's checks as test functions, by name."""
    return {check.name: _test(check) for check in checks(category)}


def _test(check: Check) -> Callable[..., None]:
    def test(implementation: Any, case: Any, record: Any) -> None:
        __tracebackhide__ = True
        check.run(implementation, case, record)

    test.__name__ = test.__qualname__ = check.name
    test.__doc__ = check.function.__doc__
    marks = [getattr(pytest.mark, check.category), pytest.mark.cases(provider=check.provider)]
    if check.slow:
        marks.append(pytest.mark.slow)
    for mark in marks:
        test = mark(test)
    return test
