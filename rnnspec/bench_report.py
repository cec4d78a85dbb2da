"""Speed reports: Markdown and one self-contained HTML page with plots.

Input is pytest-benchmark's JSON (``--benchmark-json``) from ``pytest conformance -m speed``;
each entry's ``extra_info["rnnspec_speed"]`` is a :class:`rnnspec.speed.SpeedResult`.
The plots (matplotlib, Agg canvas, embedded as base64 PNG) show time, the ratio
candidate/baseline and the fraction of the matrix-product limit against T, B and H.
A conformance report (``--conformance-report``'s JSON) renders into the same page.
Files that rnnspec did not write are never overwritten unless ``force`` is given.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnspec.errors import RnnSpecError
from rnnspec.results import markdown as conformance_markdown
from rnnspec.results import report_problem
from rnnspec.speed import RECORD_KEY, SCHEMA

MARKER = "<!-- written by `rnnspec report`; rerunning it replaces this file -->"
BASENAME = "rnnspec-report"
AXES = (("steps", "T (steps)"), ("batch", "B (batch)"), ("hidden_size", "H (hidden = input)"))
MODE_STYLE = {"forward": "-", "forward_backward": "--"}


class ReportError(RnnSpecError, ValueError):
    """The report's input cannot be read, or an output file is not ours to replace."""


@dataclass
class Benchmarks:
    """The rnnspec speed records of one pytest-benchmark JSON file."""

    source: Path
    records: list[dict[str, Any]]
    machine: dict[str, Any] = field(default_factory=dict)
    datetime: str = ""


def load_benchmarks(path: Path) -> Benchmarks:
    data = _read_json(path, "benchmark")
    entries = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ReportError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    records = [
        entry["extra_info"][RECORD_KEY]
        for entry in entries
        if isinstance(entry, dict)
        and isinstance(entry.get("extra_info"), dict)
        and RECORD_KEY in entry["extra_info"]
    ]
    if not records:
        raise ReportError(
            f"{path}: no rnnspec speed results; write it with "
            "`pytest conformance --impl NAME -m speed --benchmark-json FILE`"
        )
    schemas = {r.get("schema") if isinstance(r, dict) else None for r in records} - {SCHEMA}
    if schemas:
        raise ReportError(
            f"{path}: speed results of format {sorted(map(str, schemas))}, not {SCHEMA}"
        )
    for index, record in enumerate(records):
        problem = record_problem(record)
        if problem:
            raise ReportError(f"{path}: speed result {index}: {problem}")
    machine, when = data.get("machine_info", {}), data.get("datetime", "")
    return Benchmarks(path, records, machine if isinstance(machine, dict) else {}, str(when or ""))


NUMBER = (int, float)
RATIO = {"median": NUMBER, "q1": NUMBER, "q3": NUMBER}
SIDE = {
    **RATIO,
    "min": NUMBER,
    "rounds": int,
    "fraction_of_limit": NUMBER,
    "backend": str,
    "warnings": list,
    "noncontiguous": list,
}
RECORD: dict[str, Any] = {
    "implementation": str,
    "baseline_implementation": str,
    "cell": str,
    "mode": str,
    "steps": int,
    "batch": int,
    "hidden_size": int,
    "dtype": str,
    "device": str,
    "threads": int,
    "numpy_blas_threads": (str, type(None)),
    "candidate": SIDE,
    "baseline": SIDE,
    "ratio": RATIO,
    "environment": dict,
}


def record_problem(record: Any, fields: dict[str, Any] = RECORD, where: str = "") -> str:
    """What is wrong with one speed record (a missing key, a wrong type), or ``""``."""
    if not isinstance(record, dict):
        name = repr(where.rstrip(".")) if where else "the record"
        return f"{name} is {type(record).__name__}, not an object"
    for key, expected in fields.items():
        name = f"{where}{key}"
        if key not in record:
            return f"missing {name!r}"
        value = record[key]
        if isinstance(expected, dict):
            problem = record_problem(value, expected, f"{name}.")
            if problem:
                return problem
        elif isinstance(value, bool) or not isinstance(value, expected):
            wanted = (
                "/".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else (expected.__name__)
            )
            return f"{name!r} is {type(value).__name__} {value!r:.40}, expected {wanted}"
    return ""


def load_conformance(path: Path) -> dict[str, Any]:
    data = _read_json(path, "conformance")
    problem = report_problem(data)
    if problem:
        raise ReportError(f"{path}: {problem}")
    return data


MAX_INPUT = 256 * 2**20


def _read_json(path: Path, what: str) -> Any:
    try:
        if not path.is_file():
            kind = (
                "a directory" if path.is_dir() else "missing" if not path.exists() else "not a file"
            )
            raise ReportError(f"cannot read the {what} file {path}: it is {kind}")
        if path.stat().st_size > MAX_INPUT:
            raise ReportError(f"{path}: larger than {MAX_INPUT >> 20} MiB; not a {what} file")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ReportError(f"cannot read the {what} file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not JSON (not UTF-8 text)") from None
    except (json.JSONDecodeError, RecursionError) as error:
        raise ReportError(f"{path}: not JSON ({error})") from None


# -- what ran, and what to warn about ---------------------------------------------------
def environment_lines(bench: Benchmarks) -> list[str]:
    """Torch version, backends, threads, device, dtype: everything that shapes the numbers."""
    records = bench.records
    env = records[0]["environment"]
    cpu = bench.machine.get("cpu", {}) if isinstance(bench.machine, dict) else {}
    lines = [
        f"candidate: {_values(records, 'implementation')}; baseline: "
        f"{_values(records, 'baseline_implementation')}",
        f"torch {env.get('torch', '?')}, NumPy {env.get('numpy', '?')}, "
        f"Python {env.get('python', '?')}",
        f"device: {_values(records, 'device')} ({env.get('device', '?')}); "
        f"dtype: {_values(records, 'dtype')}; torch threads: {_values(records, 'threads')}",
        f"machine: {cpu.get('brand_raw') or env.get('machine', '?')}, {cpu.get('count', '?')} CPUs",
        f"oneDNN (mkldnn) available: {env.get('mkldnn')}; CUDA: {env.get('cuda')}; "
        f"cuDNN: {env.get('cudnn')}",
    ]
    for side in ("candidate", "baseline"):
        backends = Counter(
            f"{record['cell']} {record['mode']}: {record[side]['backend']}" for record in records
        )
        lines.append(f"{side} backends: " + "; ".join(sorted(backends)))
    blas = {record["numpy_blas_threads"] for record in records} - {None}
    if blas:
        lines.append(f"NumPy BLAS threads: {', '.join(sorted(blas))}")
    if bench.datetime:
        lines.append(f"measured: {bench.datetime}")
    return lines


def _title(records: list[dict[str, Any]]) -> str:
    return f"rnnspec speed report: {_values(records, 'implementation')}"


def _values(records: list[dict[str, Any]], key: str) -> str:
    return ", ".join(str(value) for value in dict.fromkeys(record[key] for record in records))


def warnings_found(records: list[dict[str, Any]]) -> list[str]:
    """Non-contiguous weights, warnings raised while running, silent slow paths."""
    found: dict[str, None] = {}
    for record in records:
        for side in ("candidate", "baseline"):
            info, name = record[side], _name(record, side)
            if info["noncontiguous"]:
                found[
                    f"{name}: non-contiguous weights ({', '.join(info['noncontiguous'])}): "
                    "each call may copy them"
                ] = None
            for message in info["warnings"]:
                found[f"{name} ({record['cell']} {record['device']}): {message}"] = None
            if "not used" in info["backend"]:
                found[f"{name} ({record['cell']} {record['mode']}): {info['backend']}"] = None
        blas = record["numpy_blas_threads"]
        if blas is not None and blas.startswith("not limited"):
            found[f"NumPy BLAS threads {blas}: NumPy timings may slow torch down"] = None
        if record["candidate"]["rounds"] < 3:
            found[
                "fewer than 3 rounds (pytest-benchmark disabled, e.g. under xdist): "
                "the numbers are single samples"
            ] = None
    return list(found)


def _name(record: dict[str, Any], side: str) -> str:
    return record["implementation" if side == "candidate" else "baseline_implementation"]


# -- tables -----------------------------------------------------------------------------
TABLE_HEADER = (
    "cell",
    "mode",
    "T",
    "B",
    "H",
    "dtype",
    "device",
    "candidate ms [q1, q3]",
    "baseline ms [q1, q3]",
    "ratio [q1, q3]",
    "candidate GFLOP/s (of limit)",
    "baseline GFLOP/s (of limit)",
    "limit GFLOP/s",
)


def table_rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in sorted(records, key=_order):
        c, b, ratio = r["candidate"], r["baseline"], r["ratio"]
        rows.append(
            (
                r["cell"],
                r["mode"].replace("_", "+"),
                str(r["steps"]),
                str(r["batch"]),
                str(r["hidden_size"]),
                r["dtype"],
                r["device"],
                f"{c['median'] * 1e3:.3g} [{c['q1'] * 1e3:.3g}, {c['q3'] * 1e3:.3g}]",
                f"{b['median'] * 1e3:.3g} [{b['q1'] * 1e3:.3g}, {b['q3'] * 1e3:.3g}]",
                f"{ratio['median']:.2f} [{ratio['q1']:.2f}, {ratio['q3']:.2f}]",
                f"{c['gflops']:.3g} ({c['fraction_of_limit']:.0%})",
                f"{b['gflops']:.3g} ({b['fraction_of_limit']:.0%})",
                f"{r['limit']['gflops']:.3g}",
            )
        )
    return rows


def _order(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["cell"],
        record["dtype"],
        record["device"],
        record["mode"],
        record["steps"],
        record["batch"],
        record["hidden_size"],
    )


NOTES = (
    "Each round times the candidate and the baseline back to back, in alternating order; "
    "times are medians with quartiles over the rounds, the ratio is the median of the "
    "per-round ratios candidate/baseline (below 1: the candidate is faster). "
    "FLOPs are the matrix products of the spec's equations (forward+backward: 3x forward); "
    "the limit is torch.mm at the same shapes on this machine."
)


def markdown(bench: Benchmarks, conformance: dict[str, Any] | None = None) -> str:
    records = bench.records
    lines = [MARKER, f"# {_title(records)}", "", "## What ran", ""]
    lines += [f"- {line}" for line in environment_lines(bench)]
    warned = warnings_found(records)
    if warned:
        lines += ["", "## Warnings", ""] + [f"- {line}" for line in warned]
    lines += ["", "## Results", "", NOTES, ""]
    lines.append("| " + " | ".join(TABLE_HEADER) + " |")
    lines.append("|" + "|".join("---" if i < 7 else "---:" for i in range(len(TABLE_HEADER))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(records)]
    lines += ["", f"Plots: {BASENAME}.html."]
    if conformance is not None:
        body = conformance_markdown(conformance)
        lines += ["", *("#" + line if line.startswith("#") else line for line in body.splitlines())]
    return "\n".join(lines) + "\n"


# -- plots ------------------------------------------------------------------------------
def base_point(records: list[dict[str, Any]]) -> tuple[int, int, int]:
    """The (T, B, H) the sweep varies one axis around: the point with the most neighbours."""
    points = {(r["steps"], r["batch"], r["hidden_size"]) for r in records}

    def neighbours(point: tuple[int, int, int]) -> int:
        return sum(sum(a == b for a, b in zip(point, other, strict=True)) == 2 for other in points)

    return max(sorted(points), key=neighbours)


def axis_series(
    records: list[dict[str, Any]], axis: str, base: tuple[int, int, int]
) -> list[dict[str, Any]]:
    """Records that differ from ``base`` only along ``axis``, in increasing order."""
    fixed = {key: value for (key, _), value in zip(AXES, base, strict=True) if key != axis}
    chosen = [r for r in records if all(r[key] == value for key, value in fixed.items())]
    return sorted(chosen, key=lambda r: r[axis])


def figures(records: list[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """One PNG per (cell, dtype, device): rows time, ratio, fraction of limit; columns T, B, H."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import NullLocator
    except ImportError:
        raise ReportError(
            "plots need matplotlib: pip install 'rnnspec[report]' (or matplotlib)"
        ) from None
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault((record["cell"], record["dtype"], record["device"]), []).append(record)
    found = []
    for (cell, dtype, device), group in sorted(groups.items()):
        base = base_point(group)
        figure = Figure(figsize=(13, 10), layout="constrained")
        axes = figure.subplots(3, len(AXES), squeeze=False)
        for column, (axis, label) in enumerate(AXES):
            series = axis_series(group, axis, base)
            for mode, style in MODE_STYLE.items():
                points = [r for r in series if r["mode"] == mode]
                if points:
                    _plot_mode(axes[:, column], points, axis, mode, style)
            values = sorted({r[axis] for r in series})
            for row in range(3):
                axes[row][column].set_xlabel(label)
                axes[row][column].set_xscale("log", base=2)
                axes[row][column].set_xticks(values, [str(v) for v in values], minor=False)
                axes[row][column].xaxis.set_minor_locator(NullLocator())
                axes[row][column].grid(True, alpha=0.3)
            axes[1][column].axhline(1.0, color="grey", linewidth=0.8)
        axes[0][0].set_ylabel("time per call (ms)")
        axes[1][0].set_ylabel("ratio candidate / baseline")
        axes[2][0].set_ylabel("fraction of matmul limit")
        for row in range(3):
            axes[row][0].legend(fontsize="small")
        title = f"{cell} {dtype} {device}, around T={base[0]} B={base[1]} H={base[2]}"
        figure.suptitle(title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        found.append((title, buffer.getvalue()))
    return found


def _plot_mode(axes: Any, points: list[dict[str, Any]], axis: str, mode: str, style: str) -> None:
    from matplotlib.ticker import FuncFormatter

    xs = [r[axis] for r in points]
    names = {"candidate": points[0]["implementation"]}
    names["baseline"] = points[0]["baseline_implementation"]
    mode_label = mode.replace("_", "+")
    for side, color in (("candidate", "tab:blue"), ("baseline", "tab:orange")):
        medians = [r[side]["median"] * 1e3 for r in points]
        low = [m - r[side]["q1"] * 1e3 for m, r in zip(medians, points, strict=True)]
        high = [r[side]["q3"] * 1e3 - m for m, r in zip(medians, points, strict=True)]
        label = f"{names[side]} {mode_label}"
        axes[0].errorbar(xs, medians, yerr=[low, high], fmt=style + "o", color=color, label=label)
        fractions = [r[side]["fraction_of_limit"] for r in points]
        axes[2].plot(xs, fractions, style + "o", color=color, label=label)
    ratios = [r["ratio"]["median"] for r in points]
    low = [m - r["ratio"]["q1"] for m, r in zip(ratios, points, strict=True)]
    high = [r["ratio"]["q3"] - m for m, r in zip(ratios, points, strict=True)]
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    for which in ("major", "minor"):
        getattr(axes[1].yaxis, f"set_{which}_formatter")(FuncFormatter(lambda v, _: f"{v:g}"))
    axes[1].errorbar(
        xs, ratios, yerr=[low, high], fmt=style + "o", color="tab:green", label=mode_label
    )


# -- HTML -------------------------------------------------------------------------------
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}"
    "table{border-collapse:collapse;font-size:0.85em}"
    "td,th{border:1px solid #ccc;padding:0.2em 0.5em}td.n{text-align:right}"
    ".warn{color:#a40}img{max-width:100%}"
)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], numeric_from: int) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if i >= numeric_from else ''}>{html.escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _list(items: list[str], css: str = "") -> str:
    attribute = f' class="{css}"' if css else ""
    return f"<ul{attribute}>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def conformance_html(data: dict[str, Any]) -> str:
    parts = [f"<h2>Conformance: {html.escape(str(data.get('implementation')))}</h2>"]
    rows = [
        (category, *(str(counts.get(key, 0)) for key in ("passed", "failed", "skipped")))
        for category, counts in data["summary"].items()
    ]
    parts.append(_table(("category", "passed", "failed", "skipped"), rows, 1))
    failed = [r for r in data["results"] if r["outcome"] == "failed"]
    if failed:
        parts.append("<h3>Failures</h3>")
        parts.append(
            _list([f"{r['nodeid']} ({r['failure']}): {r['message']}" for r in failed], "warn")
        )
    if data.get("worst_errors"):
        parts.append("<h3>Largest error seen versus tolerance</h3>")
        rows = [
            (
                key,
                f"{w['max_abs']:.3g}",
                f"{w['max_rel']:.3g}",
                f"{w['atol']:.3g}",
                f"{w['rtol']:.3g}",
                f"{w['ratio_to_atol']:.3g}",
            )
            for key, w in data["worst_errors"].items()
        ]
        header = ("check:value", "max abs error", "max rel error", "atol", "rtol", "error/atol")
        parts.append(_table(header, rows, 1))
    if data.get("skip_reasons"):
        parts.append("<h3>Skipped, by reason</h3>")
        reasons = sorted(data["skip_reasons"].items(), key=lambda kv: -kv[1])
        parts.append(_table(("checks", "reason"), [(str(n), r) for r, n in reasons], 0))
    return "\n".join(parts)


def render_html(bench: Benchmarks, conformance: dict[str, Any] | None = None) -> str:
    records = bench.records
    title = _title(records)
    parts = [
        "<!DOCTYPE html>",
        MARKER,
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>What ran</h2>",
        _list(environment_lines(bench)),
    ]
    warned = warnings_found(records)
    if warned:
        parts += ["<h2>Warnings</h2>", _list(warned, "warn")]
    parts += ["<h2>Plots</h2>", f"<p>{html.escape(NOTES)}</p>"]
    for caption, png in figures(records):
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts += ["<h2>Results</h2>", _table(TABLE_HEADER, table_rows(records), 2)]
    if conformance is not None:
        parts.append(conformance_html(conformance))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# -- writing ----------------------------------------------------------------------------
def written_by_us(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def write(
    bench_path: Path,
    out_dir: Path,
    conformance_path: Path | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``rnnspec-report.md`` and ``rnnspec-report.html`` into ``out_dir``."""
    bench = load_benchmarks(bench_path)
    conformance = load_conformance(conformance_path) if conformance_path else None
    targets = [out_dir / f"{BASENAME}.md", out_dir / f"{BASENAME}.html"]
    for target in targets:
        if target.exists() and not force and not written_by_us(target):
            raise ReportError(
                f"{target} exists and was not written by `rnnspec report`; "
                "refusing to overwrite it (pass --force, or choose another --out)"
            )
    texts = [markdown(bench, conformance), render_html(bench, conformance)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, text in zip(targets, texts, strict=True):
        target.write_text(text, encoding="utf-8")
    return targets


# -- command line -----------------------------------------------------------------------
def add_command(commands: Any) -> None:
    """Add ``rnnspec report`` to the CLI's subcommands."""
    report = commands.add_parser(
        "report",
        help="write the speed (and conformance) report: Markdown and HTML with plots",
        description="Render pytest-benchmark JSON from `pytest conformance --impl NAME -m speed "
        f"--benchmark-json BENCH.json` into DIR/{BASENAME}.md and DIR/{BASENAME}.html (plots "
        "embedded). Files there that rnnspec did not write are kept unless --force.",
    )
    report.add_argument("bench", type=Path, metavar="BENCH.json")
    report.add_argument("--out", type=Path, default=Path("."), metavar="DIR")
    report.add_argument(
        "--conformance",
        type=Path,
        metavar="REPORT.json",
        help="a conformance report (from --conformance-report) to include",
    )
    report.add_argument(
        "--force", action="store_true", help="overwrite files rnnspec did not write"
    )
    report.set_defaults(run=_run)


def _run(args: Any) -> int:
    conformance = args.conformance
    if conformance is not None and not conformance.suffix:
        conformance = conformance.with_suffix(".json")
    for path in write(args.bench, args.out, conformance, args.force):
        print(f"wrote {path}")
    return 0
