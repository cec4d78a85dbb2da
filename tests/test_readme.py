"""The README documents what a user declares and types: every field of ``Implementation``
and ``Capabilities``, every ``rnnspec`` command with its options, every option the
conformance plugin adds."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from conformance import plugin
from rnnspec import cli
from rnnspec.protocol import Capabilities, Implementation

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The README's text from ``heading`` to the next heading of any level."""
    start = README.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(r"^#+ ", README[start:], re.MULTILINE)
    return README[start : start + following.start()] if following else README[start:]


def first_column_names(text: str) -> set[str]:
    """The names in backquotes in the first column of the text's table rows
    (``factory(config, device, dtype)`` gives ``factory``)."""
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)", row)}


@pytest.mark.parametrize(
    ("declaration", "heading"),
    [
        (Implementation, "### What an `Implementation` says"),
        (Capabilities, "### What `Capabilities` says"),
    ],
)
def test_every_field_has_a_row(declaration: type, heading: str) -> None:
    missing = {f.name for f in fields(declaration)} - first_column_names(section(heading))
    assert not missing, f"README, {heading!r}: no row for {sorted(missing)}"


def test_every_command_and_its_options_have_a_row() -> None:
    text = section("## The command line")
    (commands,) = (
        action
        for action in cli._parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    for name, parser in commands.choices.items():
        assert f"`rnnspec {name}" in text, f"README: no `rnnspec {name}`"
        options = {
            option
            for action in parser._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        }
        row = next(
            (line for line in text.splitlines() if line.startswith(f"| `rnnspec {name} ")), ""
        )
        missing = {option for option in options if option not in row}
        assert not missing, f"README: `rnnspec {name}` without {sorted(missing)}"


def test_every_option_of_the_conformance_plugin_has_a_row() -> None:
    added: list[str] = []

    class Group:
        def addoption(self, *names: str, **settings: Any) -> None:
            added.extend(names)

    class Parser:
        def getgroup(self, *args: Any) -> Group:
            return Group()

    plugin.pytest_addoption(Parser())  # type: ignore[arg-type]
    rows = section("## The command line").splitlines()
    missing = [name for name in added if not any(row.startswith(f"| `{name}") for row in rows)]
    assert added and not missing, f"README: no row for {missing}"


def test_the_zoo_counts_are_the_zoo_s() -> None:
    from tests.zoo import ENTRIES

    found = re.search(
        r"The zoo holds (\d+) broken implementations; .*?\((\d+) of them\s+by the one check "
        r"they prove, named in the entry\), and for all (\d+) whose bug",
        README,
        re.DOTALL,
    )
    assert found is not None
    diagnosed = sum(1 for entry in ENTRIES if entry.hypothesis)
    proving = sum(1 for entry in ENTRIES if entry.check)
    assert tuple(map(int, found.groups())) == (len(ENTRIES), proving, diagnosed)
