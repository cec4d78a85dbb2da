"""The zoo: every deliberately broken implementation is caught by the category named for it,
and the correct scratch module and the built-ins pass.

The checks are those of the conformance suite: each ``conformance/test_<category>.py``
function with its ``cases(provider=...)`` marker, called directly with the case (no pytest
run), stopping at the first failure.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest

from rnnspec import diagnosis
from rnnspec.builtins import reference, torch_nn
from rnnspec.cases import Case
from rnnspec.checks import ignore
from rnnspec.compare import CheckFailure
from rnnspec.harness import Unsupported
from rnnspec.protocol import Implementation
from tests.zoo import CATEGORIES, ZOO
from tests.zoo.scratch import CELLS, correct

Check = Callable[[Implementation, Case, Any], None]


@cache
def suite(category: str) -> tuple[tuple[str, Check, Callable[..., list[Case]], dict], ...]:
    """The category's checks: (name, test function, case provider, provider options)."""
    module = importlib.import_module(f"conformance.test_{category}")
    found = []
    for name, function in vars(module).items():
        marks = {mark.name: mark for mark in getattr(function, "pytestmark", [])}
        if name.startswith("test_") and "cases" in marks:
            options = dict(marks["cases"].kwargs)
            found.append((name, function, options.pop("provider"), options))
    assert found, f"conformance/test_{category}.py has no case-parametrized checks"
    return tuple(found)


def runs(category: str, impl: Implementation, cells: list[str]) -> Iterator[tuple[str, Case]]:
    """Run every check of the category on the cells' cases; yield what ran, skip the rest."""
    for name, function, provider, options in suite(category):
        for case in provider(cells, **options):
            try:
                function(impl, case, ignore)
            except Unsupported:
                continue
            yield name, case


@cache
def first_failure(name: str) -> CheckFailure | None:
    """The entry's first failure in the checks of its category (None: it passes them all)."""
    entry = ZOO[name]
    cells = sorted(entry.implementation.capabilities.cells)
    try:
        for _ in runs(entry.catches, entry.implementation, cells):
            pass
    except CheckFailure as failure:
        return failure
    return None


def test_hypotheses_are_library_names() -> None:
    """Each entry's hypothesis is a name the diagnosis library can give."""
    names = {h.name for h in diagnosis.library()}
    prefixes = tuple(name.removesuffix("{order}") for name in names if name.endswith("{order}"))
    for entry in ZOO.values():
        hypothesis = entry.hypothesis
        assert hypothesis is None or hypothesis in names or hypothesis.startswith(prefixes), (
            f"{entry.name}: {hypothesis!r} is not in {sorted(names)}"
        )


@pytest.mark.parametrize("name", sorted(ZOO))
def test_entry_is_caught(name: str) -> None:
    entry = ZOO[name]
    failure = first_failure(name)
    assert failure is not None, f"{name} ({entry.bug}) passed every {entry.catches} check"
    assert failure.category == entry.failure, (
        f"{name} failed its {entry.catches} checks as {failure.category}, "
        f"but should fail as {entry.failure}: {failure}"
    )


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("impl", [correct, torch_nn(), reference()], ids=lambda i: i.name)
def test_correct_implementations_pass(impl: Implementation, category: str) -> None:
    ran = list(runs(category, impl, sorted(CELLS)))
    assert ran, f"no {category} check ran on {impl.name}"


def test_catch_rate() -> None:
    caught = {name: first_failure(name) is not None for name in ZOO}
    for category in CATEGORIES:
        names = [name for name, entry in ZOO.items() if entry.catches == category]
        print(f"zoo catch rate, {category}: {sum(caught[n] for n in names)}/{len(names)}")
    total = sum(caught.values())
    print(f"zoo catch rate: {total}/{len(ZOO)}")
    assert total == len(ZOO), f"missed: {sorted(n for n, hit in caught.items() if not hit)}"
