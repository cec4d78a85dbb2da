"""The zoo: every deliberately broken implementation is caught by the category named for it,
and the correct scratch module and the built-ins pass.

The checks are those of the conformance suite (:data:`rnnspec.checks.suite.CHECKS`), run
directly on each case (no pytest run), stopping at the first failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import pytest

from rnnspec import diagnosis
from rnnspec.cases import Case
from rnnspec.checks import ignore
from rnnspec.checks.suite import CHECK_CATEGORIES, Check, checks
from rnnspec.compare import CheckFailure
from rnnspec.diagnosis.verdict import COMPUTES_IN
from rnnspec.harness import Unsupported
from rnnspec.implementations import reference, torch_nn
from rnnspec.protocol import Implementation
from rnnspec.tolerance import EPS
from tests.zoo import ZOO
from tests.zoo.scratch import CELLS, correct


def suite(category: str, only: str | None = None) -> list[Check]:
    """The category's checks: the one named ``only``, or else those a run without -m runs
    (not marked slow)."""
    return [check for check in checks(category) if (check.name == only if only else not check.slow)]


def runs(
    category: str, impl: Implementation, cells: list[str], only: str | None = None
) -> Iterator[tuple[str, Case]]:
    """Run the category's checks (or the one named ``only``) on the cells' cases; yield
    what ran, skip the rest."""
    for check in suite(category, only):
        for case in check.provider(cells):
            try:
                check.run(impl, case, ignore)
            except Unsupported:
                continue
            yield check.name, case


@cache
def first_failure(name: str) -> CheckFailure | None:
    """The entry's first failure in the checks of its category, or in the one check it
    names (None: it passes them all)."""
    entry = ZOO[name]
    cells = sorted(entry.implementation.capabilities.cells)
    try:
        for _ in runs(entry.catches, entry.implementation, cells, entry.check):
            pass
    except CheckFailure as failure:
        return failure
    return None


def _library_name(hypothesis: str, name: str) -> bool:
    """Whether the library's ``name`` (``gate_permutation:{order}``) can give ``hypothesis``."""
    return hypothesis == name or (
        name.endswith("{order}") and hypothesis.startswith(name.removesuffix("{order}"))
    )


def _known(hypothesis: str) -> bool:
    precisions = {COMPUTES_IN.format(precision=dtype) for dtype in EPS}
    return hypothesis in precisions or any(
        _library_name(hypothesis, h.name) for h in diagnosis.library()
    )


def test_hypotheses_are_library_names() -> None:
    """Each entry's hypothesis is a name the diagnosis can give."""
    for entry in ZOO.values():
        assert entry.hypothesis is None or _known(entry.hypothesis), (
            f"{entry.name}: {entry.hypothesis!r} is not a name of the library "
            f"({sorted(h.name for h in diagnosis.library())}) nor a precision"
        )


@pytest.mark.parametrize("name", sorted(ZOO))
def test_entry_is_caught(name: str) -> None:
    entry = ZOO[name]
    for check in suite(entry.catches, entry.check):
        for library in check.needs:  # missing, the check skips every case
            pytest.importorskip(library)
    failure = first_failure(name)
    checks = entry.check or f"every {entry.catches} check"
    assert failure is not None, f"{name} ({entry.bug}) passed {checks}"
    assert failure.kind == entry.failure, (
        f"{name} failed its {entry.catches} checks as {failure.kind}, "
        f"but should fail as {entry.failure}: {failure}"
    )


@pytest.mark.parametrize("category", CHECK_CATEGORIES)
@pytest.mark.parametrize("impl", [correct, torch_nn(), reference()], ids=lambda i: i.name)
def test_correct_implementations_pass(impl: Implementation, category: str) -> None:
    ran = list(runs(category, impl, sorted(CELLS)))
    assert ran, f"no {category} check ran on {impl.name}"


def cause(name: str) -> str | None:
    """The likely cause the diagnosis attached to the entry's first failure."""
    failure = first_failure(name)
    verdict = failure.details.get("diagnosis") if failure is not None else None
    return getattr(verdict, "cause", None)


NAMED = sorted(name for name, entry in ZOO.items() if entry.hypothesis is not None)


@pytest.mark.parametrize("name", NAMED)
def test_diagnosis_names_the_bug(name: str) -> None:
    """The first failure of the entry's category carries a diagnosis naming its bug."""
    failure = first_failure(name)
    assert failure is not None, f"{name} passed every {ZOO[name].catches} check"
    verdict = failure.details.get("diagnosis")
    assert cause(name) == ZOO[name].hypothesis, f"{name}: {failure}\ndiagnosis: {verdict}"


def test_zoo_hit_rate() -> None:
    """Every hypothesis of the library is proven by a zoo entry that its diagnosis names
    (a hypothesis no broken implementation exercises fails here)."""
    hits = [name for name in NAMED if cause(name) == ZOO[name].hypothesis]
    print(f"\ndiagnosis hit rate on the zoo: {len(hits)}/{len(NAMED)}")
    for name in NAMED:
        print(
            f"  {name:26} {ZOO[name].catches:11} expected {ZOO[name].hypothesis!s:26} "
            f"named {cause(name)}"
        )
    proven = {ZOO[name].hypothesis for name in hits}
    unproven = sorted(
        {h.name for h in diagnosis.library()}
        - {h.name for h in diagnosis.library() for p in proven if p and _library_name(p, h.name)}
    )
    assert not unproven, f"hypotheses no zoo entry proves: {unproven}"


def test_catch_rate() -> None:
    """Every category is proven by at least one zoo entry that it catches."""
    caught = {name: first_failure(name) is not None for name in ZOO}
    for category in CHECK_CATEGORIES:
        names = [name for name, entry in ZOO.items() if entry.catches == category]
        print(f"zoo catch rate, {category}: {sum(caught[n] for n in names)}/{len(names)}")
    print(f"zoo catch rate: {sum(caught.values())}/{len(ZOO)}")
    proven = {entry.catches for name, entry in ZOO.items() if caught[name]}
    unproven = set(CHECK_CATEGORIES) - proven
    assert not unproven, f"categories no zoo entry proves: {unproven}"


@pytest.mark.parametrize("name", sorted(set(ZOO) - set(NAMED)))
def test_diagnosis_does_not_guess_bugs_outside_the_library(name: str) -> None:
    """No hypothesis or precision is named (a gradient localisation may be)."""
    found = cause(name)
    assert found is None or not _known(found), f"{name}: {first_failure(name)}: {found}"
