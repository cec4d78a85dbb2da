"""Conformance results: collected from test reports, summarized, written as JSON and Markdown."""

from __future__ import annotations

import json
import platform
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnspec.checks import CATEGORIES
from rnnspec.diagnosis.verdict import likely_causes

OUTCOMES = ("passed", "failed", "skipped")
GENERATOR = "rnnspec conformance report"
MARKDOWN_TITLE = "# rnnspec conformance report"


@dataclass
class Result:
    nodeid: str
    category: str
    outcome: str
    message: str = ""
    failure: str = ""
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    cell: str = ""


class Results:
    def __init__(self) -> None:
        self.items: list[Result] = []

    def count(self) -> int:
        return len(self.items)

    def add(self, report: Any) -> None:
        """Take one pytest TestReport; only conformance checks (with a category) count."""
        category = next((c for c in CATEGORIES if c in report.keywords), None)
        if category is None:
            return
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        outcome = "skipped" if report.skipped else ("passed" if report.passed else "failed")
        comparisons = [value for key, value in report.user_properties if key == "rnnspec"]
        failure = next(
            (value for key, value in report.user_properties if key == "rnnspec-failure"),
            "error" if outcome == "failed" else "",
        )
        diagnosis = next(
            (value for key, value in report.user_properties if key == "rnnspec-diagnosis"), None
        )
        cell = next((value for key, value in report.user_properties if key == "rnnspec-cell"), "")
        self.items.append(
            Result(
                report.nodeid,
                category,
                outcome,
                _message(report),
                failure,
                comparisons,
                diagnosis,
                cell,
            )
        )

    def table(self) -> dict[str, Counter[str]]:
        table: dict[str, Counter[str]] = {}
        for result in self.items:
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
        causes = likely_causes(r.diagnosis for r in self.items if r.diagnosis)
        if causes:
            lines.append("likely causes, by cell (from the diagnoses):")
            lines.extend(f"  {line}" for line in causes)
        lines += ran_nothing_lines(ran_nothing(self.items, capabilities))
        reasons = self.skip_reasons()
        if reasons:
            lines.append("skipped, by reason:")
            lines.extend(f"  {count:5}  {reason}" for reason, count in reasons.most_common())
        return lines

    def as_dict(self, impl: Any) -> dict[str, Any]:
        worst: dict[str, dict[str, Any]] = defaultdict(dict)
        for result in self.items:
            for comparison in result.comparisons:
                key = f"{result.category}:{comparison['what']}"
                ratio = comparison["max_abs"] / max(comparison["atol"], 1e-300)
                if ratio >= worst[key].get("ratio_to_atol", -1.0):
                    worst[key] = {**comparison, "ratio_to_atol": ratio, "nodeid": result.nodeid}
        return {
            "generator": GENERATOR,
            "implementation": getattr(impl, "name", None),
            "description": getattr(impl, "description", ""),
            "capabilities": impl.capabilities.as_dict() if impl is not None else None,
            "environment": environment(),
            "summary": {category: dict(counts) for category, counts in self.table().items()},
            "skip_reasons": dict(self.skip_reasons()),
            "ran_nothing": ran_nothing(self.items, getattr(impl, "capabilities", None)),
            "skipped_by_cell": skipped_by_cell(self.items),
            "worst_errors": dict(sorted(worst.items())),
            "results": [asdict(result) for result in self.items],
        }

    def write(self, path: Path, impl: Any) -> list[Path]:
        """Write PATH.json and PATH.md (a suffix on PATH is replaced); return the paths."""
        data = self.as_dict(impl)
        json_path, markdown_path = report_paths(path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        markdown_path.write_text(markdown(data), encoding="utf-8")
        return [json_path, markdown_path]


def ran_nothing(items: list[Result], capabilities: Any) -> list[dict[str, str]]:
    """Each category that ran no check (every one skipped) for a cell the candidate
    declares, with the most common skip reason; categories never collected are left out."""
    if capabilities is None:
        return []
    grouped: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for result in items:
        if result.cell and capabilities.declares(result.cell):
            grouped[result.category, result.cell].append(result)
    found = []
    for (category, cell), results in grouped.items():
        if all(result.outcome == "skipped" for result in results):
            reason = Counter(result.message for result in results).most_common(1)[0][0]
            found.append({"category": category, "cell": cell, "reason": reason})
    return sorted(found, key=lambda row: (CATEGORIES.index(row["category"]), row["cell"]))


def skipped_by_cell(items: list[Result]) -> list[dict[str, Any]]:
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
    """PATH.json and PATH.md for ``--conformance-report PATH`` (a .json/.md suffix dropped)."""
    base = path.with_suffix("") if path.suffix in (".json", ".md") else path
    return base.with_suffix(".json"), base.with_suffix(".md")


def foreign_files(path: Path) -> list[Path]:
    """The report files at PATH that exist but were not written by rnnspec."""
    found = []
    for target in report_paths(path):
        if target.exists():
            head = target.read_text(encoding="utf-8", errors="replace")[:400]
            if GENERATOR not in head and MARKDOWN_TITLE not in head:
                found.append(target)
    return found


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


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    lines = [f"{MARKDOWN_TITLE}: {data['implementation']}", ""]
    if data.get("description"):
        lines += [data["description"], ""]
    lines += ["Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    lines += ["| category | passed | failed | skipped |", "|---|---:|---:|---:|"]
    for category, counts in data["summary"].items():
        lines.append(
            f"| {category} | {counts.get('passed', 0)} | {counts.get('failed', 0)} | "
            f"{counts.get('skipped', 0)} |"
        )
    if data.get("ran_nothing"):
        lines += ["", "## Ran no check for a declared cell", "", "| category | cell | reason |"]
        lines.append("|---|---|---|")
        lines += [f"| {r['category']} | {r['cell']} | {r['reason']} |" for r in data["ran_nothing"]]
    failed = [r for r in data["results"] if r["outcome"] == "failed"]
    if failed:
        lines += ["", "## Failures", ""]
        for result in failed:
            message = result["message"].replace("\n", " ")
            lines.append(f"- `{result['nodeid']}` ({result['failure']}): {message}")
            if result.get("diagnosis"):
                lines.append(f"  - diagnosis: {result['diagnosis']['verdict']}")
        causes = likely_causes(r["diagnosis"] for r in failed if r.get("diagnosis"))
        if causes:
            lines += ["", "## Likely causes, by cell", ""]
            lines += [f"- {line}" for line in causes]
    if data["worst_errors"]:
        lines += [
            "",
            "## Largest error seen versus tolerance",
            "",
            "| check:value | max abs error | max rel error | atol | rtol | error/atol |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, worst in data["worst_errors"].items():
            lines.append(
                f"| {key} | {worst['max_abs']:.3g} | {worst['max_rel']:.3g} | "
                f"{worst['atol']:.3g} | {worst['rtol']:.3g} | {worst['ratio_to_atol']:.3g} |"
            )
    if data.get("skipped_by_cell"):
        lines += ["", "## Skipped, per category and cell", ""]
        lines += ["| category | cell | checks | reason |", "|---|---|---:|---|"]
        lines += [
            f"| {r['category']} | {r['cell']} | {r['checks']} | {r['reason']} |"
            for r in data["skipped_by_cell"]
        ]
    if data["skip_reasons"]:
        lines += ["", "## Skipped, by reason", "", "| checks | reason |", "|---:|---|"]
        lines += [
            f"| {n} | {reason} |"
            for reason, n in sorted(data["skip_reasons"].items(), key=lambda kv: -kv[1])
        ]
    return "\n".join(lines) + "\n"
