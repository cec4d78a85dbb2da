"""``rnnspec report``: Markdown and self-contained HTML from benchmark JSON, safe overwrites."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rnnspec import bench_report, cli, implementations, report_render, speed
from rnnspec.report_model import ConformanceReport, Report
from rnnspec.results import CheckResult, Results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _side(median: float, **extra: Any) -> dict[str, Any]:
    return {
        "median": median,
        "q1": median * 0.9,
        "q3": median * 1.1,
        "min": median * 0.8,
        "max": median * 1.2,
        "rounds": 5,
        "gflops": 2.0,
        "fraction_of_limit": 0.5,
        "build_s": 0.004,
        "first_call_s": 0.25,
        "backend": "ATen operators (Python loop)",
        "top_ops": ["aten::addmm"],
        "warnings": [],
        "noncontiguous": [],
        **extra,
    }


def record(
    cell: str = "lstm",
    mode: str = "forward",
    point: tuple[int, int, int] = (8, 4, 16),
    ratio: float = 1.5,
    candidate: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
    blas: str | None = None,
    quartiles: tuple[float, float] = (-0.1, 0.2),
    converged: bool = True,
    limit_gflops: float | None = None,
) -> dict[str, Any]:
    steps, batch, hidden = point
    variant = ":" in cell
    ratios = {"median": ratio, "q1": ratio + quartiles[0], "q3": ratio + quartiles[1]}
    stopped = "precision" if converged else "budget"
    product = {"what": "W @ h", "shape": [batch, hidden, 4 * hidden], "count": steps}
    # every product at 2 * its FLOPs per call ** 0.1 GFLOP/s: consistent, larger is faster
    product["gflops"] = limit_gflops or 2 * (batch * hidden * 4 * hidden) ** 0.1
    result = speed.SpeedResult(
        implementation="candidate-x",
        baseline_implementation="reference" if variant else "torch",
        baseline_note=f"torch.nn has no {cell}" if variant else None,
        cell=cell,
        mode=mode,
        steps=steps,
        batch=batch,
        input_size=hidden,
        hidden_size=hidden,
        num_layers=1,
        dtype="float32",
        device="cpu",
        threads=2,
        numpy_blas_threads=blas,
        cpu=0,
        flops=1000,
        clock=speed.CLOCK_NAMES["cpu"],
        candidate=candidate or _side(0.003),
        baseline=baseline or _side(0.002, backend="oneDNN (mkldnn)"),
        ratio={
            **ratios,
            "min": 1.0,
            "max": 2.0,
            "rounds": 40,
            "ci_low": ratio * 0.97,
            "ci_high": ratio * 1.02,
            "confidence": 0.95,
            "half_width": 0.05,
            "converged": converged,
            "stopped": stopped,
        },
        limit={"time_s": 0.001, "gflops": 4.0, "products": [product], "flags": []},
        environment={"torch": "2.13.0+cpu", "numpy": "2.4", "python": "3.11", "mkldnn": True},
        label=f"{cell} T={steps}",
    )
    return result.as_dict()


SWEEP = speed.SWEEPS["small"].points()


def sweep_records(cells: tuple[str, ...] = ("lstm",)) -> list[dict[str, Any]]:
    return [
        record(cell, mode, point, ratio=1.0 + index / 10)
        for cell in cells
        for mode in speed.MODES
        for index, point in enumerate(SWEEP)
    ]


def write_bench(
    path: Path, records: list[dict[str, Any]], left_out: list[dict[str, str]] | None = None
) -> Path:
    entries = [{"name": r["label"], "extra_info": {speed.RECORD_KEY: r}} for r in records]
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}},
        "datetime": "2026-01-01T00:00:00",
        "benchmarks": [{"name": "unrelated", "extra_info": {}}, *entries],
        speed.LEFT_OUT_KEY: left_out or [],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def conformance_data() -> dict[str, Any]:
    results = Results()
    comparison = {
        "what": "output",
        "max_abs": 0.2,
        "max_rel": 0.3,
        "atol": 1e-5,
        "rtol": 1e-6,
        "passed": False,
    }
    results.items += [
        CheckResult("test_parity.py::test_forward[lstm]", "parity", "passed"),
        CheckResult(
            "test_parity.py::test_forward[gru]",
            "parity",
            "failed",
            "output[0, 1, 2]=0.5, but should be 0.7 <gru>",
            "mismatch",
            [comparison],
        ),
        CheckResult(
            "test_shapes.py::test_x[elman]", "shapes", "skipped", "bidirectional not supported"
        ),
    ]
    return results.as_dict(implementations.reference())


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return write_bench(tmp_path / "bench.json", sweep_records())


def test_markdown_records_what_ran_and_every_result(bench: Path) -> None:
    text = report_render.markdown(bench_report.report(bench_report.load_benchmarks(bench)))
    assert text.startswith(bench_report.MARKER + "\n# rnnspec speed report: candidate-x\n")
    assert "- torch 2.13.0+cpu, NumPy 2.4, Python 3.11" in text
    assert "- device: cpu (?); dtype: float32; torch threads: 2 (intra-op, oneDNN's" in text
    assert "- calls pinned to CPU 0\n" in text
    assert "- machine: Test CPU, 2 CPUs" in text
    assert "- clock: this process's CPU time (time.process_time): time the scheduler" in text
    assert "baseline backends: lstm forward: oneDNN (mkldnn); lstm forward_backward:" in text
    rows = [line for line in text.splitlines() if line.startswith("| lstm | forward | ")][:-1]
    assert len(rows) == len(SWEEP)
    assert (
        "| lstm | forward | 8 | 4 | 16 | float32 | cpu | torch | 3 [2.7, 3.3] | 2 [1.8, 2.2] "
        in (text)
    )
    assert "| 1.000 [0.970, 1.020] | [0.90, 1.20] | 40 | 2 (50%) | 2 (50%) | 4 |  |" in text
    assert "## Flags\n\n- none: every figure passed its checks\n" in text
    assert text.index("## Flags") < text.index("## What ran")
    assert "## Warnings" not in text and "## Left out" not in text
    assert "| lstm | forward | 4 | 250 | 3 | 4 | 250 | 2 |" in text  # first call, base point


def test_warnings_name_slow_paths_and_measurement_problems() -> None:
    records = [
        record(candidate=_side(0.003, noncontiguous=["weight_hh_l0"], warnings=["UserWarning: x"])),
        record(
            baseline=_side(
                0.002, backend="ATen generic (aten::lstm, oneDNN available but not used)"
            )
        ),
        record(blas="not limited (install threadpoolctl)"),
    ]
    assert bench_report.warnings_found(records) == [
        "candidate-x: non-contiguous weights (weight_hh_l0): each call may copy them",
        "candidate-x (lstm cpu): UserWarning: x",
        "torch (lstm forward): ATen generic (aten::lstm, oneDNN available but not used)",
        "NumPy BLAS threads not limited (install threadpoolctl): NumPy timings may slow torch down",
    ]


def test_the_sweep_axes_are_found_around_the_base_point() -> None:
    records = [r for r in sweep_records() if r["mode"] == "forward"]
    assert bench_report.base_point(records) == (8, 4, 16)
    for axis, values in [
        ("steps", [4, 8, 16]),
        ("batch", [1, 4, 16]),
        ("hidden_size", [8, 16, 32]),
    ]:
        series = bench_report.axis_series(records, axis, (8, 4, 16))
        assert [r[axis] for r in series] == values


def test_html_is_self_contained_with_one_figure_per_cell(tmp_path: Path) -> None:
    bench = write_bench(tmp_path / "bench.json", sweep_records(("lstm", "gru")))
    page = report_render.html_page(
        bench_report.report(bench_report.load_benchmarks(bench), conformance_data())
    )
    assert page.startswith("<!DOCTYPE html>\n" + bench_report.MARKER)
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(image).startswith(PNG_SIGNATURE) for image in images)
    assert "<figcaption>gru float32 cpu, around T=8 B=4 H=16: time per call (medians" in page
    assert page.count("<figcaption>") == 2
    assert "<h2>rnnspec conformance report: reference</h2>" in page
    assert "output[0, 1, 2]=0.5, but should be 0.7 &lt;gru&gt;" in page


def test_conformance_report_renders_into_the_markdown(bench: Path) -> None:
    text = report_render.markdown(
        bench_report.report(bench_report.load_benchmarks(bench), conformance_data())
    )
    assert "\n## rnnspec conformance report: reference\n" in text
    assert "| parity | 1 | 1 | 0 |" in text


def test_markdown_and_html_say_the_same() -> None:
    """One report model: the verdict, the likely cause per cell and the categories that ran
    no check reach the HTML page as they reach the Markdown."""
    data = conformance_data()
    failed = next(result for result in data["results"] if result["outcome"] == "failed")
    failed["diagnosis"] = {
        "verdict": "diverges at t=0; matches gru_reset_before",
        "cell": "gru",
        "cause": "gru_reset_before",
        "fix": "declare cells={'gru:reset_before'}",
    }
    data["ran_nothing"] = [{"category": "shapes", "cell": "elman", "reason": "no bias"}]
    report = Report(conformance=ConformanceReport.from_dict(data))
    text, page = report_render.markdown(report), report_render.html_page(report)
    for expected in (
        "diagnosis: diverges at t=0; matches gru_reset_before",
        "gru: gru_reset_before (1x) - fix: declare cells={'gru:reset_before'}",
        "Ran no check for a declared cell",
        "Skipped, per category and cell",
    ):
        assert expected in text
        assert html.escape(expected) in page


def test_write_refuses_files_it_did_not_write(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    markdown, page = bench_report.write(bench, out)
    assert (markdown.name, page.name) == ("rnnspec-report.md", "rnnspec-report.html")
    assert bench_report.write(bench, out) == [markdown, page]  # our own files: replaced
    markdown.write_text("# my notes\n", encoding="utf-8")
    with pytest.raises(bench_report.ReportError, match="not written by `rnnspec report`"):
        bench_report.write(bench, out)
    assert markdown.read_text(encoding="utf-8") == "# my notes\n"
    bench_report.write(bench, out, force=True)
    assert bench_report.written_by_us(markdown)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not JSON"),
        ('{"results": []}', "not a pytest-benchmark JSON file"),
        ('{"benchmarks": [{"extra_info": {}}]}', "no rnnspec speed results"),
        (
            '{"benchmarks": [{"extra_info": {"rnnspec_speed": {"schema": "v0"}}}]}',
            rf"speed results of format \['v0'\], not {speed.SCHEMA}",
        ),
    ],
)
def test_unreadable_input_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bench.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(bench_report.ReportError, match=message):
        bench_report.load_benchmarks(path)


def test_command_line(bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    report = tmp_path / "conformance"
    report.with_suffix(".json").write_text(json.dumps(conformance_data()), encoding="utf-8")
    argv = ["report", str(bench), "--out", str(out), "--conformance", str(report)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out / 'rnnspec-report.md'}",
        f"wrote {out / 'rnnspec-report.html'}",
    ]
    page = (out / "rnnspec-report.html").read_text(encoding="utf-8")
    assert "rnnspec conformance report: reference" in page
    (out / "rnnspec-report.html").write_text("<p>mine</p>", encoding="utf-8")
    assert cli.main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main([*argv, "--force"]) == 0
    assert cli.main(["report", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the benchmark file" in capsys.readouterr().err


def test_a_disturbed_limit_is_flagged_on_the_first_screen(tmp_path: Path) -> None:
    """The figures of the issue: a torch.mm limit of 0.0047 GFLOP/s among 2-15 elsewhere,
    so fractions of 9846% and 20536%."""
    records = sweep_records()
    disturbed = next(r for r in records if (r["steps"], r["mode"]) == (16, "forward"))
    disturbed["limit"]["products"][0]["gflops"] = 0.0047
    disturbed["candidate"]["fraction_of_limit"] = 98.46
    disturbed["baseline"]["fraction_of_limit"] = 205.36
    bench = bench_report.load_benchmarks(write_bench(tmp_path / "bench.json", records))
    text = report_render.markdown(bench_report.report(bench))
    first_screen = text[: text.index("## What ran")]
    assert (
        "- limit: lstm forward T=16 B=4 H=16: torch.mm (4x16)@(16x64) at 0.0047 GFLOP/s, under "
        "1/3 of the " in first_screen
    )
    assert (
        "- implausible: lstm forward T=16 B=4 H=16: candidate-x at 9846% of the matmul limit, "
        "above 1.5x the baseline's best (50%)" in first_screen
    )
    page = report_render.html_page(bench_report.report(bench))
    assert "<h2>Flags (2)</h2>" in page
    assert page.index("0.0047 GFLOP/s") < page.index("<h2>What ran</h2>")
    row = next(
        line for line in text.splitlines() if "| 16 | 4 | 16 |" in line and "| forward" in line
    )
    assert row.endswith("| limit, implausible |")


def test_the_report_says_where_the_calls_ran(tmp_path: Path) -> None:
    unpinned, older = record(), record()
    unpinned["cpu"] = None
    del older["cpu"]  # written before rnnspec pinned its calls: nothing to say
    for records, expected in (([unpinned], ["calls not pinned"]), ([older], [])):
        bench = bench_report.load_benchmarks(write_bench(tmp_path / "b.json", records))
        lines = bench_report.environment_lines(bench)
        assert [line for line in lines if line.startswith("calls")] == expected


def test_noisy_unconverged_and_remeasured_points_are_flagged() -> None:
    records = [
        record(point=(8, 4, 16)),
        record(point=(4, 4, 16), quartiles=(-0.5, 0.5)),
        record(point=(16, 4, 16), converged=False),
        record(point=(8, 1, 16)),
        record(point=(8, 16, 16), converged=False),
    ]
    records[3]["limit"]["flags"] = ["torch.mm (1x16)@(16x64): 0.1 GFLOP/s, but 1 before"]
    medians = [1.5, 1.48, 1.52, 1.51, 1.49, 1.7]
    records[4]["ratio"].update(
        stopped="visits_disagree",
        visits=[{"median": m, "rounds": 8, "seconds": 0.25} for m in medians],
        ci_high=1.7,
    )
    assert [(flag.kind, flag.record) for flag in bench_report.flags(records)] == [
        ("noisy", 1),
        ("not converged", 2),
        ("limit", 3),
        ("not converged", 4),
    ]
    assert bench_report.flag_lines(bench_report.flags(records)) == [
        "limit: lstm forward T=8 B=1 H=16: torch.mm (1x16)@(16x64): 0.1 GFLOP/s, but 1 before",
        "not converged: lstm forward T=16 B=4 H=16: ratio 1.500, 95% interval [1.455, 1.530] "
        "not within +-5% after 40 rounds (budget)",
        "not converged: lstm forward T=8 B=16 H=16: ratio 1.500, 95% interval [1.455, 1.700] "
        "not within +-5%: the medians of its 6 visits range over [1.480, 1.700]",
        "noisy: lstm forward T=4 B=4 H=16: ratio quartiles [1.00, 2.00], more than 1.5x apart",
    ]
    column = bench_report.TABLE_HEADER.index("rounds (visits)")
    rows = bench_report.table_rows(records, bench_report.flags(records))
    assert sorted(row[column] for row in rows) == ["40"] * 4 + ["40 (6)"]


def test_left_out_cells_and_substituted_baselines_are_said(tmp_path: Path) -> None:
    left_out = [
        {"cell": "gru:reset_before", "mode": mode, "label": "x", "reason": "cell not supported"}
        for mode in speed.MODES
    ]
    records = [record(), record(cell="lstm:peephole")]
    bench = bench_report.load_benchmarks(write_bench(tmp_path / "b.json", records, left_out))
    text = report_render.markdown(bench_report.report(bench))
    assert (
        "## Left out\n\n- gru:reset_before (forward, forward+backward): cell not supported\n"
        in (text)
    )
    assert "- baseline for lstm:peephole: reference (torch.nn has no lstm:peephole)" in text
    assert "| lstm:peephole | forward | 8 | 4 | 16 | float32 | cpu | reference |" in text


def test_plots_clip_the_fraction_axis_and_draw_doubtful_points_hollow() -> None:
    from matplotlib.figure import Figure

    points = [{**record(point=(t, 4, 16)), "doubtful": t == 16} for t in (4, 8, 16)]
    points[0]["candidate"]["fraction_of_limit"] = 98.46
    axes = Figure().subplots(3, 1)
    bench_report._plot_mode(axes, points, "steps", "forward", "-")
    assert [text.get_text() for text in axes[2].texts] == ["9846%"]
    assert max(line.get_ydata().max() for line in axes[2].get_lines()) == bench_report.FRACTION_CLIP
    markers = [line for line in axes[1].get_lines() if line.get_marker() == "o"]
    assert [line.get_markerfacecolor() == "white" for line in markers] == [False, False, True]


def test_against_an_earlier_run_says_how_far_each_ratio_moved(tmp_path: Path) -> None:
    earlier = write_bench(tmp_path / "a.json", sweep_records())
    moved = sweep_records()
    moved[2]["ratio"]["median"] *= 1.08  # lstm forward T=16 B=4 H=16: 1.2 -> 1.296
    moved[3]["ratio"]["median"] *= 0.97
    later = write_bench(tmp_path / "b.json", moved[:-1])
    markdown_path, _ = bench_report.write(later, tmp_path / "out", against=earlier)
    text = markdown_path.read_text(encoding="utf-8")
    assert (
        f"12 of 13 points within the interval {earlier} states for them (its 95% interval, at "
        "least +-5%), 12 within +-5%; largest difference +8.0% (lstm forward T=16 B=4 H=16); "
        "of the 1 outside it, 0 had not converged there"
    ) in text
    assert (
        "| lstm forward T=16 B=4 H=16 | 1.200 [1.140, 1.260] | 1.296 [1.164, 1.361] | +8.0% | no "
        "| same |"
    ) in text
    assert (
        "| lstm forward T=8 B=1 H=16 | 1.300 [1.235, 1.365] | 1.261 [1.198, 1.326] | -3.0% | yes "
        "| same |"
    ) in text
    assert "another speed" not in text


def test_a_point_whose_visits_disagreed_states_a_wider_interval(tmp_path: Path) -> None:
    """A ratio the earlier run could only place in [1.0, 1.5]: 1.4 now is within it."""
    unsteady = sweep_records()
    unsteady[2]["ratio"].update(ci_low=1.0, ci_high=1.5, converged=False)
    earlier = write_bench(tmp_path / "a.json", unsteady)
    moved = sweep_records()
    moved[2]["ratio"]["median"] = 1.4
    summary, rows = bench_report.agreement(moved, bench_report.load_benchmarks(earlier))
    assert summary.startswith("14 of 14 points within the interval") and "13 within +-5%" in summary
    assert rows[0] == (
        "lstm forward T=16 B=4 H=16",
        "1.200 [1.000, 1.500]",
        "1.400 [1.164, 1.470]",
        "+16.7%",
        "yes",
        "same",
    )


def test_against_counts_apart_the_points_where_the_machine_ran_at_another_speed(
    tmp_path: Path,
) -> None:
    earlier = write_bench(tmp_path / "a.json", sweep_records())
    moved = sweep_records()
    slower = moved[2]  # both sides 60% and 40% slower: the ratio moved with the machine
    slower["candidate"]["median"] *= 1.6
    slower["baseline"]["median"] *= 1.4
    slower["ratio"]["median"] *= 1.6 / 1.4
    moved[3]["ratio"]["median"] *= 1.07  # same machine speed, a real disagreement
    later = write_bench(tmp_path / "b.json", moved)
    markdown_path, _ = bench_report.write(later, tmp_path / "out", against=earlier)
    text = markdown_path.read_text(encoding="utf-8")
    assert (
        "At 1 point the machine ran at another speed (both sides' times moved more than 25% "
        "the same way); of the 13 measured at the same speed, 12 are within its interval, the "
        "largest "
        "difference +7.0% (lstm forward T=8 B=1 H=16)" in text
    )
    assert "| +14.3% | no | changed: candidate +60%, baseline +40% |" in text
