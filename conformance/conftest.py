"""The suite's markers (its categories from :mod:`rnnspec.checks.suite`), registered only
where the suite is collected (never in other projects' runs, which the installed plugin must
leave as they are)."""

import pytest

from rnnspec.checks.suite import CATEGORIES


def pytest_configure(config: pytest.Config) -> None:
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: rnnspec conformance checks of {category}")
    config.addinivalue_line(
        "markers",
        "cases(provider=f): parametrize 'case' with provider(cells), fitted to the candidate",
    )
    config.addinivalue_line(
        "markers",
        "slow: rnnspec conformance checks left out of a run without -m (compile, export, "
        "large sizes)",
    )
