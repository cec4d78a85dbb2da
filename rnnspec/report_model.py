"""The report as data, whatever it is rendered to.

A :class:`Report` holds a conformance section (:class:`ConformanceReport`: what a run of the
suite found, per category and per cell, with each failure's verdict as data), a speed
section (:class:`SpeedReport`: what a sweep measured and what to doubt in it), or both; or
a compatibility matrix (:class:`MatrixReport`: several implementations' runs of the suite,
each counted per cell and category by :class:`CellSummary`). :mod:`rnnspec.report_render`
renders one to Markdown and to HTML.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rnnspec.diagnosis.verdict import likely_causes
from rnnspec.protocol import ALL_CELLS

Status = Literal["pass", "fail", "mixed", "skip"]


@dataclass(frozen=True)
class Cell:
    """A table cell whose text has a status: a colour in HTML, only the text in Markdown."""

    text: str
    status: Status


@dataclass(frozen=True)
class Table:
    """Rows of text under a header; the columns in ``numeric`` hold numbers (aligned right)."""

    header: tuple[str, ...]
    rows: Sequence[tuple[str | Cell, ...]]
    numeric: frozenset[int] = frozenset()

    @classmethod
    def numeric_from(
        cls, header: tuple[str, ...], rows: Sequence[tuple[str | Cell, ...]], first: int
    ) -> Table:
        """A table whose columns from ``first`` on hold numbers."""
        return cls(header, rows, frozenset(range(first, len(header))))


@dataclass(frozen=True)
class Failure:
    """One failed check: its node id, its failure kind, its message and its verdict."""

    nodeid: str
    kind: str
    message: str
    verdict: str = ""


@dataclass(frozen=True)
class ConformanceReport:
    """What one run of the suite found, read from the JSON that ``--conformance-report``
    writes (:meth:`rnnspec.results.Results.as_dict`)."""

    implementation: str | None
    description: str
    environment: dict[str, Any]
    run: dict[str, Any] | None  # how the run ended; None in reports written before it was
    summary: dict[str, dict[str, int]]  # category: outcome: checks
    ran_nothing: list[dict[str, str]]  # category, cell, reason
    failures: list[Failure]
    likely_causes: list[str]  # per cell, from the verdicts
    worst_errors: dict[str, dict[str, Any]]  # "category:value": the largest error seen
    skipped_by_cell: list[dict[str, Any]]  # category, cell, reason, checks
    skip_reasons: dict[str, int]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformanceReport:
        failed = [result for result in data["results"] if result["outcome"] == "failed"]
        diagnoses = [result["diagnosis"] for result in failed if result.get("diagnosis")]
        return cls(
            implementation=data["implementation"],
            description=data.get("description") or "",
            environment=data["environment"],
            run=data.get("run"),
            summary=data["summary"],
            ran_nothing=data.get("ran_nothing") or [],
            failures=[
                Failure(
                    result["nodeid"],
                    result["failure"],
                    result["message"],
                    (result.get("diagnosis") or {}).get("verdict") or "",
                )
                for result in failed
            ],
            likely_causes=likely_causes(diagnoses),
            worst_errors=data["worst_errors"],
            skipped_by_cell=data.get("skipped_by_cell") or [],
            skip_reasons=data["skip_reasons"],
        )


@dataclass(frozen=True)
class SpeedReport:
    """What a speed sweep measured, as :mod:`rnnspec.bench_report` reads and checks it."""

    title: str
    flags: list[str]  # figures not to believe as they stand
    left_out: list[str]  # cells the sweep left out, with the reason
    environment: list[str]  # what ran: versions, backends, threads, clock
    warnings: list[str]
    notes: str  # how the figures were measured
    results: Table  # one row per point
    first_call: Table  # building and the first call against the steady state
    agreement: tuple[str, Table] | None  # against an earlier run: a summary and the points
    figures: Callable[[], list[tuple[str, bytes]]]  # (caption, PNG); drawn only when shown


@dataclass(frozen=True)
class Report:
    """A speed section, a conformance section, or both; or a compatibility matrix.
    ``marker`` is a first line that says who wrote the file (so that rerunning may
    replace it)."""

    speed: SpeedReport | None = None
    conformance: ConformanceReport | None = None
    matrix: MatrixReport | None = None
    marker: str = ""
    figures_file: str = ""  # where the Markdown sends its reader for the plots


@dataclass(frozen=True)
class CellSummary:
    """Checks per (cell, category) by outcome, and the first failure of each: its verdict,
    else the first line of its message."""

    counts: dict[tuple[str, str], Counter[str]]
    first_failure: dict[tuple[str, str], str]

    @classmethod
    def of(cls, results: Iterable[Mapping[str, Any]]) -> CellSummary:
        """From the ``results`` of a conformance report, in its order."""
        counts: dict[tuple[str, str], Counter[str]] = {}
        first_failure: dict[tuple[str, str], str] = {}
        for result in results:
            key = (cell_of(result["nodeid"]), result["category"])
            counts.setdefault(key, Counter())[result["outcome"]] += 1
            if result["outcome"] == "failed" and key not in first_failure:
                verdict = (result.get("diagnosis") or {}).get("verdict")
                first_failure[key] = verdict or result["message"].split("\n")[0]
        return cls(counts, first_failure)


def cell_of(node_id: str) -> str:
    """The cell a check ran on, from its parameter id (``test_forward[gru:reset_before-I5...]``)."""
    match = re.search(r"\[([^\]-]+)", node_id)
    return match.group(1) if match and match.group(1) in ALL_CELLS else "-"


@dataclass(frozen=True)
class SuiteRun:
    """One implementation's run of the suite in ``rnnspec matrix``: how it ended, and its
    checks per cell and category; ``error`` says why it wrote no report."""

    name: str
    exit_code: int
    seconds: float
    summary: CellSummary
    error: str = ""

    def cells(self) -> list[str]:
        return sorted({cell for cell, _ in self.summary.counts})

    def total(self) -> Counter[str]:
        return sum(self.summary.counts.values(), Counter())


@dataclass(frozen=True)
class MatrixReport:
    """Several implementations' runs of the suite side by side, one column per category."""

    runs: list[SuiteRun]
    categories: tuple[str, ...]
