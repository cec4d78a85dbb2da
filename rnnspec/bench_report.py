"""Speed reports: a pytest-benchmark sweep read, checked and plotted, as report data.

Input is pytest-benchmark's JSON (``--benchmark-json``) from ``pytest conformance -m speed``;
each entry's ``extra_info["rnnspec_speed"]`` is a :class:`rnnspec.speed.SpeedResult`.
The plots (matplotlib, Agg canvas, embedded as base64 PNG) show time, the ratio
candidate/baseline and the fraction of the matrix-product limit against T, B and H.
Every figure is checked before it is shown (:func:`flags`): ratios that did not converge or
whose quartiles are far apart, matrix-product limits that disagree with each other, and
fractions of the limit above what the baseline reaches are listed on the first screen.
A conformance report (``--conformance-report``'s JSON) goes below it;
:mod:`rnnspec.report_render` renders both to Markdown and to one self-contained HTML page.
Files that rnnspec did not write are never overwritten unless ``force`` is given.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnspec import report_render
from rnnspec.errors import RnnSpecError
from rnnspec.report_model import ConformanceReport, Report, SpeedReport, Table
from rnnspec.results import report_problem
from rnnspec.speed import LEFT_OUT_KEY, LIMIT_FACTOR, RECORD_KEY, SCHEMA

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
    left_out: list[dict[str, str]] = field(default_factory=list)
    earlier: Benchmarks | None = None
    """An earlier run of the same sweep, to compare the ratios with (``--against``)."""


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
    left_out = data.get(LEFT_OUT_KEY) or []
    if not isinstance(left_out, list):
        raise ReportError(f"{path}: {LEFT_OUT_KEY!r} is {type(left_out).__name__}, not a list")
    return Benchmarks(
        path, records, machine if isinstance(machine, dict) else {}, str(when or ""), left_out
    )


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
        f"dtype: {_values(records, 'dtype')}; torch threads: {_values(records, 'threads')} "
        "(intra-op, oneDNN's kernels included)",
        f"machine: {cpu.get('brand_raw') or env.get('machine', '?')}, {cpu.get('count', '?')} CPUs",
        f"oneDNN (mkldnn) available: {env.get('mkldnn')}; CUDA: {env.get('cuda')}; "
        f"cuDNN: {env.get('cudnn')}",
    ]
    substituted = Counter(
        f"{record['baseline_implementation']} ({record['baseline_note']})"
        for record in records
        if record["baseline_note"]
    )
    if substituted:
        cells = _values([r for r in records if r["baseline_note"]], "cell")
        lines.append(f"baseline for {cells}: {'; '.join(sorted(substituted))}")
    for side in ("candidate", "baseline"):
        backends = Counter(
            f"{record['cell']} {record['mode']}: {record[side]['backend']}" for record in records
        )
        lines.append(f"{side} backends: " + "; ".join(sorted(backends)))
    if any("cpu" in record for record in records):  # recorded since rnnspec pins calls
        pinned = sorted({str(r["cpu"]) for r in records if r.get("cpu") is not None})
        lines.append(f"calls pinned to CPU {', '.join(pinned)}" if pinned else "calls not pinned")
    blas = {record["numpy_blas_threads"] for record in records} - {None}
    if blas:
        lines.append(f"NumPy BLAS threads: {', '.join(sorted(blas))}")
    lines.append(f"clock: {_values(records, 'clock')}")
    ratio = records[0]["ratio"]
    lines.append(
        f"rounds: until the median ratio's {ratio['confidence']:.0%} interval is within "
        f"+-{ratio['half_width']:.0%} of it, or the point's time budget is spent"
    )
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
    return list(found)


def left_out_lines(bench: Benchmarks) -> list[str]:
    """Each cell the run left out, its modes and the reason."""
    modes: dict[tuple[str, str], list[str]] = {}
    for item in bench.left_out:
        modes.setdefault((item["cell"], item["reason"]), []).append(_mode(item["mode"]))
    return [
        f"{cell} ({', '.join(dict.fromkeys(found))}): {reason}"
        for (cell, reason), found in modes.items()
    ]


def _name(record: dict[str, Any], side: str) -> str:
    return record["implementation" if side == "candidate" else "baseline_implementation"]


def _mode(mode: str) -> str:
    return mode.replace("_", "+")


# -- sanity checks ----------------------------------------------------------------------
NOISY_FACTOR = 1.5
"""A ratio whose third quartile is more than this times its first is noisy."""
PLAUSIBLE = 1.5
"""A fraction of the limit above this times the best the baseline reaches is implausible."""
FLAG_KINDS = ("limit", "implausible", "not converged", "noisy")


@dataclass(frozen=True)
class Flag:
    """A figure of one record that should not be believed as it stands."""

    kind: str
    record: int
    point: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.point}: {self.detail}"


def flags(records: list[dict[str, Any]]) -> list[Flag]:
    """Every doubtful figure: unconverged or noisy ratios, inconsistent matmul limits,
    fractions of the limit the baseline never comes near."""
    found = []
    for index, record in enumerate(records):
        ratio, point = record["ratio"], point_text(record)
        if not ratio["converged"]:
            found.append(Flag("not converged", index, point, _unconverged(ratio)))
        if ratio["q3"] > NOISY_FACTOR * ratio["q1"]:
            found.append(
                Flag(
                    "noisy",
                    index,
                    point,
                    f"ratio quartiles [{ratio['q1']:.2f}, {ratio['q3']:.2f}], more than "
                    f"{NOISY_FACTOR:g}x apart",
                )
            )
        found += [Flag("limit", index, point, text) for text in record["limit"]["flags"]]
    found += _inconsistent_limits(records)
    unsound = {flag.record for flag in found if flag.kind == "limit"}
    return found + _implausible_fractions(records, unsound)


def _unconverged(ratio: dict[str, Any]) -> str:
    text = (
        f"ratio {ratio['median']:.3f}, {ratio['confidence']:.0%} interval "
        f"[{ratio['ci_low']:.3f}, {ratio['ci_high']:.3f}] not within +-{ratio['half_width']:.0%}"
    )
    if ratio["stopped"] == "visits_disagree":
        medians = [visit["median"] for visit in ratio["visits"]]
        return (
            f"{text}: the medians of its {len(medians)} visits range over "
            f"[{min(medians):.3f}, {max(medians):.3f}]"
        )
    return f"{text} after {ratio['rounds']} rounds ({ratio['stopped'].replace('_', ' ')})"


def _inconsistent_limits(records: list[dict[str, Any]]) -> list[Flag]:
    """A product slower by :data:`LIMIT_FACTOR` than one of no more FLOPs, anywhere."""
    products = [
        (index, product, (r["dtype"], r["device"], r["threads"]))
        for index, r in enumerate(records)
        for product in r["limit"]["products"]
    ]
    found = []
    for index, product, setting in products:
        size = _product_size(product)
        faster = [
            other
            for _, other, other_setting in products
            if other_setting == setting and _product_size(other) <= size
        ]
        best = max(faster, key=lambda other: other["gflops"])
        if product["gflops"] * LIMIT_FACTOR < best["gflops"]:
            found.append(
                Flag(
                    "limit",
                    index,
                    point_text(records[index]),
                    f"torch.mm {_shape(product)} at "
                    f"{product['gflops']:.3g} GFLOP/s, under 1/{LIMIT_FACTOR:g} of the "
                    f"{best['gflops']:.3g} GFLOP/s of {_shape(best)} elsewhere in this run",
                )
            )
    return found


def _product_size(product: dict[str, Any]) -> int:
    rows, inner, cols = product["shape"]
    return rows * inner * cols


def _shape(product: dict[str, Any]) -> str:
    rows, inner, cols = product["shape"]
    return f"({rows}x{inner})@({inner}x{cols})"


def _implausible_fractions(records: list[dict[str, Any]], doubtful: set[int]) -> list[Flag]:
    """Candidate fractions above :data:`PLAUSIBLE` times the best fraction the baseline
    reaches at the points of the same cell, mode, dtype and device whose limit is sound."""
    best: dict[tuple[str, ...], float] = {}
    for index, record in enumerate(records):
        if index not in doubtful:
            key = _group(record)
            best[key] = max(best.get(key, 0.0), record["baseline"]["fraction_of_limit"])
    found = []
    for index, record in enumerate(records):
        reach = best.get(_group(record))
        fraction = record["candidate"]["fraction_of_limit"]
        if reach is not None and fraction > PLAUSIBLE * reach:
            found.append(
                Flag(
                    "implausible",
                    index,
                    point_text(record),
                    f"{record['implementation']} at {fraction:.0%} of the matmul limit, above "
                    f"{PLAUSIBLE:g}x the baseline's best ({reach:.0%})",
                )
            )
    return found


def _group(record: dict[str, Any]) -> tuple[str, ...]:
    return (record["cell"], record["mode"], record["dtype"], record["device"])


def point_text(record: dict[str, Any]) -> str:
    """``lstm forward T=8 B=4 H=16``, with dtype and device when not float32 on the CPU."""
    extra = (
        ""
        if (record["dtype"], record["device"]) == ("float32", "cpu")
        else (f" {record['dtype']} {record['device']}")
    )
    return (
        f"{record['cell']} {_mode(record['mode'])} T={record['steps']} B={record['batch']} "
        f"H={record['hidden_size']}{extra}"
    )


def flag_lines(found: list[Flag]) -> list[str]:
    """One line per flagged figure, by kind, for the report's first screen."""
    return [flag.line() for kind in FLAG_KINDS for flag in found if flag.kind == kind]


def _flag_kinds(found: list[Flag], index: int) -> list[str]:
    return list(dict.fromkeys(flag.kind for flag in found if flag.record == index))


# -- tables -----------------------------------------------------------------------------
TABLE_HEADER = (
    "cell",
    "mode",
    "T",
    "B",
    "H",
    "dtype",
    "device",
    "baseline",
    "candidate ms [q1, q3]",
    "baseline ms [q1, q3]",
    "ratio [95% interval]",
    "ratio [q1, q3]",
    "rounds (visits)",
    "candidate GFLOP/s (of limit)",
    "baseline GFLOP/s (of limit)",
    "limit GFLOP/s",
    "flags",
)
TABLE_NUMBERS = frozenset(
    index
    for index, column in enumerate(TABLE_HEADER)
    if column not in ("cell", "mode", "dtype", "device", "baseline", "flags")
)


def table_rows(records: list[dict[str, Any]], found: list[Flag]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for index in sorted(range(len(records)), key=lambda i: _order(records[i])):
        r = records[index]
        c, b, ratio = r["candidate"], r["baseline"], r["ratio"]
        rows.append(
            (
                r["cell"],
                _mode(r["mode"]),
                str(r["steps"]),
                str(r["batch"]),
                str(r["hidden_size"]),
                r["dtype"],
                r["device"],
                r["baseline_implementation"],
                f"{c['median'] * 1e3:.3g} [{c['q1'] * 1e3:.3g}, {c['q3'] * 1e3:.3g}]",
                f"{b['median'] * 1e3:.3g} [{b['q1'] * 1e3:.3g}, {b['q3'] * 1e3:.3g}]",
                f"{ratio['median']:.3f} [{ratio['ci_low']:.3f}, {ratio['ci_high']:.3f}]",
                f"[{ratio['q1']:.2f}, {ratio['q3']:.2f}]",
                _rounds(ratio),
                f"{c['gflops']:.3g} ({c['fraction_of_limit']:.0%})",
                f"{b['gflops']:.3g} ({b['fraction_of_limit']:.0%})",
                f"{r['limit']['gflops']:.3g}",
                ", ".join(_flag_kinds(found, index)),
            )
        )
    return rows


def _rounds(ratio: dict[str, Any]) -> str:
    visits = ratio.get("visits")
    return f"{ratio['rounds']} ({len(visits)})" if visits else str(ratio["rounds"])


FIRST_CALL_HEADER = (
    "cell",
    "mode",
    "candidate build ms",
    "candidate first call ms",
    "candidate steady ms",
    "baseline build ms",
    "baseline first call ms",
    "baseline steady ms",
)


def first_call_rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Building and the first call (compiling, tracing, sessions) against the steady state,
    at each cell's base point."""
    rows = []
    for record in sorted(records, key=_order):
        base = base_point([r for r in records if _group(r)[::2] == _group(record)[::2]])
        if (record["steps"], record["batch"], record["hidden_size"]) != base:
            continue
        row = [record["cell"], _mode(record["mode"])]
        for side in ("candidate", "baseline"):
            info = record[side]
            row += [f"{info[key] * 1e3:.3g}" for key in ("build_s", "first_call_s", "median")]
        rows.append(tuple(row))
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
    "rounds go on until the median of the per-round ratios candidate/baseline (below 1: the "
    "candidate is faster) is known to the stated precision, by its distribution-free "
    "confidence interval (two order statistics of the ratios), or the point's time budget "
    "is spent. Times are medians with quartiles over the rounds. FLOPs are the matrix "
    "products of the spec's equations (forward+backward: 3x forward); the limit is torch.mm "
    "at the same shapes on this machine, the fastest of several timings."
)


def speed_report(bench: Benchmarks) -> SpeedReport:
    """The sweep as report data: flags, what ran, the tables; figures drawn when shown."""
    records = bench.records
    found = flags(records)
    compared = None
    if bench.earlier is not None:
        summary, rows = agreement(records, bench.earlier)
        compared = (summary, Table.numeric_from(AGREEMENT_HEADER, rows, 1))
    return SpeedReport(
        title=_title(records),
        flags=flag_lines(found),
        left_out=left_out_lines(bench),
        environment=environment_lines(bench),
        warnings=warnings_found(records),
        notes=NOTES,
        results=Table(TABLE_HEADER, table_rows(records, found), TABLE_NUMBERS),
        first_call=Table.numeric_from(FIRST_CALL_HEADER, first_call_rows(records), 2),
        agreement=compared,
        figures=lambda: figures(records, found),
    )


def report(bench: Benchmarks, conformance: dict[str, Any] | None = None) -> Report:
    """The speed report, with the conformance report of ``conformance`` (its JSON) below."""
    return Report(
        speed_report(bench),
        None if conformance is None else ConformanceReport.from_dict(conformance),
        marker=MARKER,
        figures_file=f"{BASENAME}.html",
    )


AGREEMENT_HEADER = (
    "point",
    "earlier ratio [stated interval]",
    "ratio [stated interval]",
    "difference",
    "within",
    "machine speed",
)
MACHINE_SPEED_CHANGE = 0.25
"""Both sides' times moving more than this, the same way, between two runs: the machine ran
at another speed (a shared core, a neighbour), which moves a ratio on its own when one side
is bound by Python's dispatch and the other by a kernel."""


def machine_speed_change(record: dict[str, Any], before: dict[str, Any]) -> str | None:
    """How the machine's speed changed between ``before`` and ``record`` (both sides'
    median times moved the same way by more than :data:`MACHINE_SPEED_CHANGE`), or None."""
    moves = [
        record[side]["median"] / before[side]["median"] - 1 for side in ("candidate", "baseline")
    ]
    if all(move > MACHINE_SPEED_CHANGE for move in moves) or all(
        move < -MACHINE_SPEED_CHANGE for move in moves
    ):
        return f"changed: candidate {moves[0]:+.0%}, baseline {moves[1]:+.0%}"
    return None


def stated_interval(ratio: dict[str, Any]) -> tuple[float, float]:
    """The interval a run states for a ratio: its confidence interval (widened by visits
    that disagree), and at least the precision it was measured to (+-half_width)."""
    median, width = ratio["median"], ratio["half_width"]
    low, high = median * (1 - width), median * (1 + width)
    if not (math.isnan(ratio["ci_low"]) or math.isnan(ratio["ci_high"])):
        low, high = min(low, ratio["ci_low"]), max(high, ratio["ci_high"])
    return low, high


@dataclass(frozen=True)
class Moved:
    """One point measured in both runs: how far its ratio moved, whether it lies within
    the interval the earlier run stated, and how the machine's speed changed."""

    difference: float
    inside: bool
    record: dict[str, Any]
    before: dict[str, Any]
    machine_speed: str | None


def _moved(record: dict[str, Any], before: dict[str, Any]) -> Moved:
    ratio, old = record["ratio"], before["ratio"]
    low, high = stated_interval(old)
    return Moved(
        ratio["median"] / old["median"] - 1,
        low <= ratio["median"] <= high,
        record,
        before,
        machine_speed_change(record, before),
    )


def agreement(
    records: list[dict[str, Any]], earlier_run: Benchmarks
) -> tuple[str, list[tuple[str, ...]]]:
    """How far each point's ratio moved from the earlier run's, and whether it lies within
    the interval the earlier run stated: a summary and a table row per point measured in
    both, largest difference first. Points at which the machine ran at another speed (both
    sides' times moved together) are counted apart: there the two runs did not measure
    under the same conditions."""
    earlier = {_key(record): record for record in earlier_run.records}
    found = [_moved(r, earlier[_key(r)]) for r in records if _key(r) in earlier]
    found.sort(key=lambda moved: -abs(moved.difference))
    if not found:
        return f"no point of this run is in {earlier_run.source}", []
    rows: list[tuple[str, ...]] = [
        (
            point_text(moved.record),
            _with_interval(moved.before["ratio"]),
            _with_interval(moved.record["ratio"]),
            f"{moved.difference:+.1%}",
            "yes" if moved.inside else "no",
            moved.machine_speed or "same",
        )
        for moved in found
    ]
    ratio = found[0].record["ratio"]
    width = ratio["half_width"]
    summary = (
        f"{sum(m.inside for m in found)} of {len(found)} points within the interval "
        f"{earlier_run.source} states for them (its {ratio['confidence']:.0%} interval, at "
        f"least +-{width:.0%}), {sum(abs(m.difference) <= width for m in found)} within "
        f"+-{width:.0%}; largest difference {found[0].difference:+.1%} ({rows[0][0]})"
    )
    outside = [moved for moved in found if not moved.inside]
    if outside:
        flagged = sum(not moved.before["ratio"]["converged"] for moved in outside)
        summary += f"; of the {len(outside)} outside it, {flagged} had not converged there"
    same_speed = [moved for moved in found if moved.machine_speed is None]
    changed = len(found) - len(same_speed)
    if changed:
        summary += (
            f". At {changed} point{'s' if changed > 1 else ''} the machine ran at another speed "
            f"(both sides' times moved more than {MACHINE_SPEED_CHANGE:.0%} the same way); "
            f"of the {len(same_speed)} measured at the same speed, "
            f"{sum(m.inside for m in same_speed)} are within its interval"
        )
        if same_speed:
            largest = same_speed[0]
            summary += (
                f", the largest difference {largest.difference:+.1%} ({point_text(largest.record)})"
            )
    return summary, rows


def _with_interval(ratio: dict[str, Any]) -> str:
    return "{:.3f} [{:.3f}, {:.3f}]".format(ratio["median"], *stated_interval(ratio))


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (*_order(record), record["implementation"], record["baseline_implementation"])


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


FRACTION_CLIP = 2.0
"""The fraction-of-limit axis ends at 200%; points beyond it sit on the edge, annotated."""


def figures(records: list[dict[str, Any]], found: list[Flag]) -> list[tuple[str, bytes]]:
    """One PNG per (cell, dtype, device): rows time, ratio, fraction of limit; columns T, B,
    H; with its caption."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import PercentFormatter
    except ImportError:
        raise ReportError(
            "plots need matplotlib: pip install 'rnnspec[report]' (or matplotlib)"
        ) from None
    doubtful = {flag.record for flag in found if flag.kind in ("noisy", "not converged")}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for index, record in enumerate(records):
        shown = {**record, "doubtful": index in doubtful}
        groups.setdefault((record["cell"], record["dtype"], record["device"]), []).append(shown)
    found_figures = []
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
                _log_axis(axes[row][column].xaxis, values)
                axes[row][column].set_xlabel(label)
                axes[row][column].grid(True, alpha=0.3)
            _log_axis(axes[0][column].yaxis)
            _log_axis(axes[1][column].yaxis)
            axes[1][column].axhline(1.0, color="grey", linewidth=0.8)
            fractions = axes[2][column]  # plotted clipped: the top is at most the clip
            fractions.set_ylim(0, max(fractions.dataLim.ymax, 0.1) * 1.15)
            axes[2][column].yaxis.set_major_formatter(PercentFormatter(1.0))
        axes[0][0].set_ylabel("time per call (ms)")
        axes[1][0].set_ylabel("ratio candidate / baseline")
        axes[2][0].set_ylabel("fraction of matmul limit")
        for row in range(3):
            axes[row][0].legend(fontsize="small")
        title = f"{cell} {dtype} {device}, around T={base[0]} B={base[1]} H={base[2]}"
        figure.suptitle(title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        found_figures.append((_caption(title, group[0]), buffer.getvalue()))
    return found_figures


def _caption(title: str, record: dict[str, Any]) -> str:
    ratio = record["ratio"]
    return (
        f"{title}: time per call (medians, bars from the first to the third quartile), "
        f"the ratio {record['implementation']}/{record['baseline_implementation']} (below 1: "
        f"the candidate is faster; bars: the median's {ratio['confidence']:.0%} interval) and "
        f"each one's fraction of the matmul limit, along T, B and H. Solid: forward; dashed: "
        f"forward+backward. Hollow markers: a ratio that is noisy or did not converge. A "
        f"triangle on the top edge: a fraction above {FRACTION_CLIP:.0%}, its value beside it."
    )


def _formatter(template: str) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: template.format(value))


def _log_axis(axis: Any, values: list[int] | None = None) -> None:
    """A log axis labelled in plain numbers: at ``values``; else at 1, 2 and 5 per decade
    over a wide range (3x or more), at round numbers a linear axis would have over a narrow
    one."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

    axis.axes.set_xscale("log", base=2) if axis.axis_name == "x" else axis.axes.set_yscale("log")
    if values is not None:
        axis.set_ticks(values, [str(v) for v in values])
    else:
        low, high = axis.axes.dataLim.intervaly
        narrow = 0 < low and high < 3 * low
        wide = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
        axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]) if narrow else wide)
        axis.set_major_formatter(_formatter("{:g}"))
    axis.set_minor_locator(NullLocator())


def _plot_mode(axes: Any, points: list[dict[str, Any]], axis: str, mode: str, style: str) -> None:
    xs = [r[axis] for r in points]
    hollow = [r["doubtful"] for r in points]
    mode_label = _mode(mode)
    for side, color in (("candidate", "tab:blue"), ("baseline", "tab:orange")):
        label = f"{_name(points[0], side)} {mode_label}"
        medians = [r[side]["median"] * 1e3 for r in points]
        bars = [[r[side]["q1"] * 1e3 for r in points], [r[side]["q3"] * 1e3 for r in points]]
        _series(axes[0], xs, medians, bars, hollow, style, color, label)
        fractions = [r[side]["fraction_of_limit"] for r in points]
        clipped = [min(f, FRACTION_CLIP) for f in fractions]
        _series(axes[2], xs, clipped, None, hollow, style, color, label)
        below = 12 if side == "candidate" else 24  # the two sides' values one above the other
        for x, fraction in zip(xs, fractions, strict=True):
            if fraction > FRACTION_CLIP:
                axes[2].plot([x], [FRACTION_CLIP], "^", color=color, markersize=9)
                axes[2].annotate(
                    f"{fraction:.0%}",
                    (x, FRACTION_CLIP),
                    textcoords="offset points",
                    xytext=(-6, -below),
                    horizontalalignment="right",
                    fontsize="small",
                    color=color,
                )
    ratios = [r["ratio"]["median"] for r in points]
    bars = [[r["ratio"]["ci_low"] for r in points], [r["ratio"]["ci_high"] for r in points]]
    _series(axes[1], xs, ratios, bars, hollow, style, "tab:green", mode_label)


def _series(
    ax: Any,
    xs: list[int],
    ys: list[float],
    bars: list[list[float]] | None,
    hollow: list[bool],
    style: str,
    color: str,
    label: str,
) -> None:
    """A line through the points, bars from ``bars[0]`` to ``bars[1]``, and markers filled
    except where ``hollow``."""
    ax.plot(xs, ys, style, color=color, label=label)
    if bars is not None:
        low = [max(y - b, 0.0) for y, b in zip(ys, bars[0], strict=True)]
        high = [max(b - y, 0.0) for y, b in zip(ys, bars[1], strict=True)]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor=color, capsize=3)
    for x, y, empty in zip(xs, ys, hollow, strict=True):
        face = "white" if empty else color
        ax.plot([x], [y], "o", color=color, markerfacecolor=face, markersize=6)


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
    against: Path | None = None,
) -> list[Path]:
    """Write ``rnnspec-report.md`` and ``rnnspec-report.html`` into ``out_dir``; with
    ``against``, an earlier benchmark JSON, each ratio is compared with its earlier value."""
    bench = load_benchmarks(bench_path)
    if against is not None:
        bench.earlier = load_benchmarks(against)
    conformance = load_conformance(conformance_path) if conformance_path else None
    targets = [out_dir / f"{BASENAME}.md", out_dir / f"{BASENAME}.html"]
    for target in targets:
        if target.exists() and not force and not written_by_us(target):
            raise ReportError(
                f"{target} exists and was not written by `rnnspec report`; "
                "refusing to overwrite it (pass --force, or choose another --out)"
            )
    built = report(bench, conformance)
    texts = [report_render.markdown(built), report_render.html_page(built)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, text in zip(targets, texts, strict=True):
        target.write_text(text, encoding="utf-8")
    return targets
