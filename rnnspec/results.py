"""Conformance results: collected from test reports, summarized, written as JSON and Markdown
(rendered from the report model by :mod:`rnnspec.report_render`).

A report says how the run ended (exit status, interrupted, complete, checks collected versus
reported) and is written atomically: a run that dies before its end leaves the report of a
run that is still ``running``, never one that looks complete. Its content is the same for the
same run serially, under xdist or in any order: results sorted, ties broken by node id.
"""

from __future__ import annotations

import json
import os
import platform
import stat
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnspec.checks.suite import CATEGORIES
from rnnspec.diagnosis.verdict import likely_causes
from rnnspec.errors import RnnSpecError
from rnnspec.report_model import ConformanceReport, Report
from rnnspec.report_render import CONFORMANCE_TITLE
from rnnspec.report_render import markdown as render_markdown

OUTCOMES = ("passed", "failed", "skipped")
GENERATOR = "rnnspec conformance report"
MARKDOWN_TITLE = f"# {CONFORMANCE_TITLE}"
CRASHED = "crashed while running"  # pytest-xdist's message for a check whose worker died


class ReportPathError(RnnSpecError, ValueError):
    """``--conformance-report PATH`` cannot be written, or holds a file rnnspec did not write."""


@dataclass
class Run:
    """How the run ended. ``status`` is ``running`` until the session finishes."""

    status: str = "running"
    exit_status: int | None = None
    interrupted: bool = False
    collected: int | None = None
    threads: int | None = None


@dataclass
class CheckResult:
    """One conformance check as it ended: outcome, message, failure kind, comparisons,
    the verdict as data, warnings and the cell it ran on."""

    nodeid: str
    category: str
    outcome: str
    message: str = ""
    failure: str = ""
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    cell: str = ""


def category_of(nodeid: str, keywords: Any = ()) -> str | None:
    """The check category of a test: its module ``test_<category>.py``, or else its marker
    (module first: pytest's keywords hold the names of the directories above the test too,
    and a checkout directory may be named like a category)."""
    stem = Path(nodeid.split("::")[0]).stem.removeprefix("test_")
    if stem in CATEGORIES:
        return stem
    return next((c for c in CATEGORIES if c in keywords), None)


class Results:
    def __init__(self) -> None:
        self.items: list[CheckResult] = []
        self.run = Run()

    def count(self) -> int:
        return len(self.items)

    def add(self, report: Any) -> None:
        """Take one pytest TestReport; only conformance checks (with a category) count, and a
        check whose xdist worker crashed counts as ``crashed``."""
        crashed = report.failed and CRASHED in str(report.longrepr)
        category = category_of(report.nodeid, report.keywords if not crashed else ())
        if category is None:
            return
        if not (crashed or report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        outcome = "skipped" if report.skipped else ("passed" if report.passed else "failed")
        properties = dict(report.user_properties)
        failure = "crashed" if crashed else properties.get("rnnspec-failure", "")
        self.items.append(
            CheckResult(
                report.nodeid,
                category,
                outcome,
                _message(report),
                failure or ("error" if outcome == "failed" else ""),
                [value for key, value in report.user_properties if key == "rnnspec"],
                properties.get("rnnspec-diagnosis"),
                properties.get("rnnspec-warnings", []),
                properties.get("rnnspec-cell", ""),
            )
        )

    def sorted_items(self) -> list[CheckResult]:
        return sorted(self.items, key=lambda result: result.nodeid)

    def complete(self) -> bool:
        """Finished, not interrupted, and every collected check reported (a crashed check is
        reported: it failed)."""
        run = self.run
        return (
            run.status == "finished"
            and not run.interrupted
            and run.exit_status in (0, 1, 5)  # OK, TESTS_FAILED, NO_TESTS_COLLECTED
            and run.collected == len({result.nodeid for result in self.items})
        )

    def run_dict(self) -> dict[str, Any]:
        reported = len({result.nodeid for result in self.items})
        return {
            **asdict(self.run),
            "complete": self.complete(),
            "reported": reported,
            "crashed": sum(result.failure == "crashed" for result in self.items),
            "warnings": sum(len(result.warnings) for result in self.items),
        }

    def status_line(self) -> str:
        """One line on how the run ended, for the terminal and the Markdown report."""
        run = self.run_dict()
        counts = f"{run['reported']} of {run['collected']} collected checks reported"
        if run["complete"]:
            return f"run complete: {counts}"
        why = [
            "the session did not finish" if run["status"] != "finished" else "",
            "interrupted" if run["interrupted"] else "",
            f"exit status {run['exit_status']}" if run["exit_status"] not in (0, 1, 5) else "",
        ]
        return f"run INCOMPLETE: {counts}" + "".join(f"; {w}" for w in why if w)

    def table(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for result in self.sorted_items():
            table.setdefault(result.category, Counter())[result.outcome] += 1
        return {category: table[category] for category in CATEGORIES if category in table}

    def skip_reasons(self) -> Counter[str]:
        return Counter(result.message for result in self.items if result.outcome == "skipped")

    def summary_lines(self, capabilities: Any = None) -> list[str]:
        lines = [f"{'category':12} {'passed':>7} {'failed':>7} {'skipped':>8}"]
        totals: Counter[str] = Counter()
        for category, counts in self.table().items():
            totals.update(counts)
            lines.append(
                f"{category:12} {counts['passed']:7} {counts['failed']:7} {counts['skipped']:8}"
            )
        lines.append(
            f"{'total':12} {totals['passed']:7} {totals['failed']:7} {totals['skipped']:8}"
        )
        failures = Counter(r.failure for r in self.items if r.outcome == "failed")
        if failures:
            lines.append(
                "failures by kind: " + ", ".join(f"{k} {n}" for k, n in failures.most_common())
            )
        causes = likely_causes(r.diagnosis for r in self.sorted_items() if r.diagnosis)
        if causes:
            lines.append("likely causes, by cell (from the diagnoses):")
            lines.extend(f"  {line}" for line in causes)
        lines += ran_nothing_lines(ran_nothing(self.items, capabilities))
        reasons = self.skip_reasons()
        if reasons:
            lines.append("skipped, by reason:")
            lines.extend(f"  {count:5}  {reason}" for reason, count in _by_count(reasons))
        warned = [result for result in self.items if result.warnings]
        if warned:
            total = sum(len(result.warnings) for result in warned)
            lines.append(f"candidate warnings: {total} in {len(warned)} checks (not failures)")
        lines.append(self.status_line())
        return lines

    def as_dict(self, impl: Any) -> dict[str, Any]:
        worst: dict[str, dict[str, Any]] = {}
        for result in self.sorted_items():  # ties go to the first node id
            for comparison in result.comparisons:
                key = f"{result.category}:{comparison['what']}"
                ratio = comparison["max_abs"] / max(comparison["atol"], 1e-300)
                if key not in worst or ratio > worst[key]["ratio_to_atol"]:
                    worst[key] = {**comparison, "ratio_to_atol": ratio, "nodeid": result.nodeid}
        env = environment()
        if self.run.threads is not None:
            env["threads"] = self.run.threads
        return {
            "generator": GENERATOR,
            "implementation": getattr(impl, "name", None),
            "description": getattr(impl, "description", ""),
            "capabilities": impl.effective_capabilities.as_dict() if impl is not None else None,
            "run": self.run_dict(),
            "environment": env,
            "summary": {
                category: {outcome: counts[outcome] for outcome in OUTCOMES if counts[outcome]}
                for category, counts in self.table().items()
            },
            "skip_reasons": dict(_by_count(self.skip_reasons())),
            "ran_nothing": ran_nothing(self.items, getattr(impl, "capabilities", None)),
            "skipped_by_cell": skipped_by_cell(self.items),
            "worst_errors": dict(sorted(worst.items())),
            "results": [asdict(result) for result in self.sorted_items()],
        }

    def write(self, path: Path, impl: Any) -> list[Path]:
        """Write PATH.json and PATH.md, each atomically; return the paths."""
        data = self.as_dict(impl)
        json_path, markdown_path = report_paths(path)
        _replace(json_path, json.dumps(data, indent=2) + "\n")
        report = Report(conformance=ConformanceReport.from_dict(data))
        _replace(markdown_path, render_markdown(report))
        return [json_path, markdown_path]


def _by_count(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _replace(target: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``target``, then rename it over ``target``."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def ran_nothing(items: list[CheckResult], capabilities: Any) -> list[dict[str, str]]:
    """Each category that ran no check (every one skipped) for a cell the candidate
    declares, with the most common skip reason; categories never collected are left out."""
    if capabilities is None:
        return []
    grouped: dict[tuple[str, str], list[CheckResult]] = defaultdict(list)
    for result in items:
        if result.cell and capabilities.declares(result.cell):
            grouped[result.category, result.cell].append(result)
    found = []
    for (category, cell), results in grouped.items():
        if all(result.outcome == "skipped" for result in results):
            reason = Counter(result.message for result in results).most_common(1)[0][0]
            found.append({"category": category, "cell": cell, "reason": reason})
    return sorted(found, key=lambda row: (CATEGORIES.index(row["category"]), row["cell"]))


def skipped_by_cell(items: list[CheckResult]) -> list[dict[str, Any]]:
    """Skipped checks counted per category, cell and reason: what did not run, and where."""
    counts = Counter((r.category, r.cell, r.message) for r in items if r.outcome == "skipped")
    return [
        {"category": category, "cell": cell, "reason": reason, "checks": n}
        for (category, cell, reason), n in sorted(
            counts.items(), key=lambda item: (CATEGORIES.index(item[0][0]), item[0][1:])
        )
    ]


def ran_nothing_lines(rows: list[dict[str, str]]) -> list[str]:
    """The summary's flag: one line per category and reason, naming the cells."""
    if not rows:
        return []
    cells: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        cells[row["category"], row["reason"]].append(row["cell"])
    lines = ["RAN NO CHECK for a declared cell (every check skipped):"]
    lines += [
        f"  {category:12} {', '.join(names)}: {reason}"
        for (category, reason), names in cells.items()
    ]
    return lines


def report_paths(path: Path) -> tuple[Path, Path]:
    """PATH.json and PATH.md for ``--conformance-report PATH``: a .json or .md suffix is
    dropped first, any other suffix kept (``report.v2`` gives ``report.v2.json``)."""
    base = path.with_suffix("") if path.suffix in (".json", ".md") else path
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".md")


def check_report_path(path: Path) -> None:
    """Raise :class:`ReportPathError` unless both report files can be written at PATH: each
    a regular, writable file that rnnspec wrote, or absent in a writable directory (created
    when missing)."""
    for target in report_paths(path):
        if target.exists() or target.is_symlink():
            mode = target.stat().st_mode if target.exists() else 0
            if not stat.S_ISREG(mode):
                kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
                raise ReportPathError(f"{target} is {kind}; give a file path")
            if not mode & stat.S_IWUSR or not os.access(target, os.W_OK):
                raise ReportPathError(f"{target} is read-only; refusing to replace it")
            if not written_by_rnnspec(target):
                raise ReportPathError(
                    f"{target} exists and was not written by rnnspec; refusing to overwrite "
                    "it (remove it or choose another path)"
                )
        folder = next(p for p in (target.parent, *target.parent.parents) if p.exists())
        if not folder.is_dir():
            raise ReportPathError(f"{folder} is not a directory; cannot write {target}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ReportPathError(f"cannot write {target}: {folder} is not writable")
    report_paths(path)[0].parent.mkdir(parents=True, exist_ok=True)


def written_by_rnnspec(target: Path) -> bool:
    with target.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(400)
    return GENERATOR in head or MARKDOWN_TITLE in head


def _message(report: Any) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        message = crash.message if crash is not None else str(report.longrepr)[-500:]
        return message.removeprefix("rnnspec.compare.CheckFailure: ")
    return ""


def environment() -> dict[str, Any]:
    """What ran: Python, NumPy, torch, its CPU backend and threads, CUDA if present."""
    import numpy as np

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    try:
        import torch
    except ImportError:
        return env
    env.update(
        {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "cuda": torch.cuda.is_available(),
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        }
    )
    return env


REPORT_FIELDS = {
    "implementation": (str, type(None)),
    "environment": dict,
    "summary": dict,
    "skip_reasons": dict,
    "worst_errors": dict,
    "results": list,
}
RESULT_FIELDS = {"nodeid": str, "category": str, "outcome": str, "failure": str, "message": str}


def report_problem(data: Any) -> str:
    """What makes ``data`` not a conformance report that the report model reads, or ``""``."""
    if not isinstance(data, dict) or data.get("generator") != GENERATOR:
        return "not a conformance report (written by --conformance-report)"
    problems = [_fields_problem(data, REPORT_FIELDS, "")]
    if not problems[0]:
        problems += [
            _fields_problem(result, RESULT_FIELDS, f"results[{index}].")
            for index, result in enumerate(data["results"])
        ]
    return next((problem for problem in problems if problem), "")


def _fields_problem(value: Any, fields: dict[str, Any], where: str) -> str:
    if not isinstance(value, dict):
        return f"{where.rstrip('.')} is {type(value).__name__}, not an object"
    for key, expected in fields.items():
        if key not in value:
            return f"missing {where}{key}"
        if not isinstance(value[key], expected):
            return f"{where}{key} is {type(value[key]).__name__}, not as rnnspec writes it"
    return ""
