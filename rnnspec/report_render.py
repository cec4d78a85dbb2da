"""One report (:mod:`rnnspec.report_model`), rendered to Markdown and to HTML.

The report becomes one list of blocks (headings, paragraphs, lists, tables, figures) and
each format renders those blocks; the two formats cannot drift apart in what they say.
The Markdown leaves the figures to the HTML page and says where they are.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from rnnspec.report_model import (
    Cell,
    ConformanceReport,
    MatrixReport,
    Report,
    SpeedReport,
    Status,
    Table,
)

CONFORMANCE_TITLE = "rnnspec conformance report"
MATRIX_TITLE = "rnnspec compatibility matrix"
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;font-size:0.85em}"
    "td,th{border:1px solid #ccc;padding:0.2em 0.5em}td.n{text-align:right}"
    "td.pass{background:#d9ead3}td.fail{background:#f4c7c3}td.mixed{background:#fce5cd}"
    "td.skip{background:#eee}.warn{color:#a40}img{max-width:100%}"
)
Text = tuple[tuple[str, str], ...]
"""Inline text as (style, text) runs; style is "" (plain), "code" or "strong"."""


def plain(text: str) -> Text:
    return (("", text),)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: Text


@dataclass(frozen=True)
class Item:
    text: Text
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Items:
    items: tuple[Item, ...]
    warn: bool = False


@dataclass(frozen=True)
class Figures:
    draw: Callable[[], list[tuple[str, bytes]]]
    elsewhere: str  # what the Markdown says instead


Block = Heading | Paragraph | Items | Table | Figures


def items(lines: list[str], warn: bool = False) -> Items:
    return Items(tuple(Item(plain(line)) for line in lines), warn)


# -- the report as blocks ----------------------------------------------------------------
def blocks(report: Report) -> list[Block]:
    """Every block of the report, in order: the speed section first, when there is one."""
    found: list[Block] = [] if report.matrix is None else matrix_blocks(report.matrix)
    if report.speed is not None:
        found += speed_blocks(report.speed, report.figures_file)
    if report.conformance is not None:
        found += conformance_blocks(report.conformance, 1 if report.speed is None else 2)
    return found


def title(report: Report) -> str:
    if report.matrix is not None:
        return MATRIX_TITLE
    if report.speed is not None:
        return report.speed.title
    name = report.conformance.implementation if report.conformance is not None else None
    return f"{CONFORMANCE_TITLE}: {name}"


def speed_blocks(speed: SpeedReport, figures_file: str) -> list[Block]:
    flags = f"Flags ({len(speed.flags)})" if speed.flags else "Flags"
    found: list[Block] = [Heading(1, speed.title), Heading(2, flags)]
    found.append(
        items(speed.flags, warn=True)
        if speed.flags
        else items(["none: every figure passed its checks"])
    )
    if speed.left_out:
        found += [Heading(2, "Left out"), items(speed.left_out, warn=True)]
    found += [Heading(2, "What ran"), items(speed.environment)]
    if speed.warnings:
        found += [Heading(2, "Warnings"), items(speed.warnings, warn=True)]
    found += [Heading(2, "Plots"), Figures(speed.figures, f"The plots are in {figures_file}.")]
    found += [Heading(2, "Results"), Paragraph(plain(speed.notes)), speed.results]
    found += [Heading(2, "First call and steady state"), speed.first_call]
    if speed.agreement is not None:
        summary, table = speed.agreement
        found += [Heading(2, "Against the earlier run"), Paragraph(plain(summary)), table]
    return found


def conformance_blocks(report: ConformanceReport, level: int) -> list[Block]:
    """The conformance section; its title at heading ``level``, its parts one below."""
    sub = level + 1
    found: list[Block] = [Heading(level, f"{CONFORMANCE_TITLE}: {report.implementation}")]
    if report.description:
        found.append(Paragraph(plain(report.description)))
    environment = ", ".join(f"{key} {value}" for key, value in report.environment.items())
    found.append(Paragraph(plain(f"Environment: {environment}")))
    if report.run is not None:
        found.append(Paragraph(_status(report.run)))
    found.append(
        Table.numeric_from(
            ("category", "passed", "failed", "skipped"),
            [
                (category, *(str(counts.get(key, 0)) for key in ("passed", "failed", "skipped")))
                for category, counts in report.summary.items()
            ],
            1,
        )
    )
    if report.ran_nothing:
        found += [
            Heading(sub, "Ran no check for a declared cell"),
            Table(
                ("category", "cell", "reason"),
                [(row["category"], row["cell"], row["reason"]) for row in report.ran_nothing],
            ),
        ]
    if report.failures:
        failures = tuple(
            Item(
                (("code", failure.nodeid), ("", f" ({failure.kind}): {one_line(failure.message)}")),
                (f"diagnosis: {failure.verdict}",) if failure.verdict else (),
            )
            for failure in report.failures
        )
        found += [Heading(sub, "Failures"), Items(failures, warn=True)]
        if report.likely_causes:
            found += [Heading(sub, "Likely causes, by cell"), items(report.likely_causes)]
    if report.worst_errors:
        header = ("check:value", "max abs error", "max rel error", "atol", "rtol", "error/atol")
        figures = ("max_abs", "max_rel", "atol", "rtol", "ratio_to_atol")
        rows = [
            (key, *(f"{worst[name]:.3g}" for name in figures))
            for key, worst in report.worst_errors.items()
        ]
        found += [
            Heading(sub, "Largest error seen versus tolerance"),
            Table.numeric_from(header, rows, 1),
        ]
    if report.skipped_by_cell:
        rows = [
            (row["category"], row["cell"], str(row["checks"]), row["reason"])
            for row in report.skipped_by_cell
        ]
        found += [
            Heading(sub, "Skipped, per category and cell"),
            Table(("category", "cell", "checks", "reason"), rows, frozenset({2})),
        ]
    if report.skip_reasons:
        rows = [(str(n), reason) for reason, n in report.skip_reasons.items()]
        found += [
            Heading(sub, "Skipped, by reason"),
            Table(("checks", "reason"), rows, frozenset({0})),
        ]
    return found


def _status(run: dict[str, object]) -> Text:
    state = ("strong", "INCOMPLETE") if not run["complete"] else ("", "complete")
    return (
        ("", "Run: "),
        state,
        (
            "",
            f" ({run['status']}, exit status {run['exit_status']}, interrupted "
            f"{run['interrupted']}); {run['reported']} of {run['collected']} collected checks "
            f"reported, {run['crashed']} crashed; {run['warnings']} candidate warnings.",
        ),
    )


def matrix_blocks(matrix: MatrixReport) -> list[Block]:
    """Checks run per implementation, then per implementation, cell and category (each
    entry passed/failed/skipped, with its status), then the first failure of each."""
    totals = [
        (
            run.name,
            str(total["passed"] + total["failed"]),
            *(str(total[outcome]) for outcome in ("passed", "failed", "skipped")),
            f"{run.seconds:.1f}",
        )
        for run in matrix.runs
        for total in (run.total(),)
    ]
    header = ("implementation", "checks run", "passed", "failed", "skipped", "time (s)")
    found: list[Block] = [
        Heading(1, MATRIX_TITLE),
        Paragraph(plain("Each entry is passed/failed/skipped checks.")),
        Table.numeric_from(header, totals, 1),
    ]
    errors = [f"{run.name} wrote no report: {run.error}" for run in matrix.runs if run.error]
    if errors:
        found.append(items(errors, warn=True))
    rows: list[tuple[str | Cell, ...]] = [
        (run.name, cell, *(_counts(run.summary.counts.get((cell, c))) for c in matrix.categories))
        for run in matrix.runs
        for cell in run.cells()
    ]
    found.append(Table.numeric_from(("implementation", "cell", *matrix.categories), rows, 2))
    failures = [
        f"{run.name}, {cell}, {category}: {text}"
        for run in matrix.runs
        for (cell, category), text in sorted(run.summary.first_failure.items())
    ]
    if failures:
        found += [Heading(2, "First failure of each failing cell"), items(failures, warn=True)]
    return found


def _counts(outcomes: Counter[str] | None) -> str | Cell:
    """passed/failed/skipped, with the status that colours it; empty where nothing ran."""
    if not outcomes:
        return ""
    passed, failed, skipped = (outcomes[key] for key in ("passed", "failed", "skipped"))
    status: Status = (
        "mixed" if passed and failed else "fail" if failed else "pass" if passed else "skip"
    )
    return Cell(f"{passed}/{failed}/{skipped}", status)


def one_line(text: str) -> str:
    return text.replace("\n", " ")


def _text_of(cell: str | Cell) -> str:
    return cell.text if isinstance(cell, Cell) else cell


# -- Markdown ----------------------------------------------------------------------------
MARKDOWN_STYLE = {"": "{}", "code": "`{}`", "strong": "**{}**"}


def markdown(report: Report) -> str:
    chunks = ["\n".join(_markdown_block(block)) for block in blocks(report)]
    head = [report.marker] if report.marker else []
    return "\n".join([*head, "\n\n".join(chunks)]) + "\n"


def _markdown_text(text: Text) -> str:
    return "".join(MARKDOWN_STYLE[style].format(run) for style, run in text)


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text]
    if isinstance(block, Paragraph):
        return [_markdown_text(block.text)]
    if isinstance(block, Items):
        return [
            line
            for item in block.items
            for line in (f"- {_markdown_text(item.text)}", *(f"  - {n}" for n in item.notes))
        ]
    if isinstance(block, Table):
        rule = "|".join("---:" if i in block.numeric else "---" for i in range(len(block.header)))
        return [
            "| " + " | ".join(block.header) + " |",
            f"|{rule}|",
            *("| " + " | ".join(map(_text_of, row)) + " |" for row in block.rows),
        ]
    return [block.elsewhere]


# -- HTML --------------------------------------------------------------------------------
HTML_STYLE = {"": "{}", "code": "<code>{}</code>", "strong": "<strong>{}</strong>"}


def html_page(report: Report) -> str:
    """A self-contained page: styles inline, figures embedded as PNG data."""
    shown = html.escape(title(report))
    parts = ["<!DOCTYPE html>", *([report.marker] if report.marker else [])]
    parts += [
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{shown}</title><style>{STYLE}</style></head><body>",
    ]
    parts += [_html_block(block) for block in blocks(report)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_text(text: Text) -> str:
    return "".join(HTML_STYLE[style].format(html.escape(run)) for style, run in text)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_html_text(block.text)}</p>"
    if isinstance(block, Items):
        css = ' class="warn"' if block.warn else ""
        return f"<ul{css}>" + "".join(_html_item(item) for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(cell)}</th>" for cell in block.header)
        body = "".join(
            "<tr>"
            + "".join(_html_cell(cell, i in block.numeric) for i, cell in enumerate(row))
            + "</tr>"
            for row in block.rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    return "\n".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
        for caption, png in block.draw()
    )


def _html_cell(cell: str | Cell, numeric: bool) -> str:
    classes = ["n"] if numeric else []
    if isinstance(cell, Cell):
        classes.append(cell.status)
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}>{html.escape(_text_of(cell))}</td>"


def _html_item(item: Item) -> str:
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in item.notes)
    return f"<li>{_html_text(item.text)}" + (f"<ul>{notes}</ul>" if notes else "") + "</li>"
