"""``rnnspec report``: Markdown and self-contained HTML from benchmark JSON, safe overwrites."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rnnspec import bench_report, builtins, cli, speed
from rnnspec.results import Result, Results

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
) -> dict[str, Any]:
    steps, batch, hidden = point
    result = speed.SpeedResult(
        implementation="candidate-x",
        baseline_implementation="torch",
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
        flops=1000,
        candidate=candidate or _side(0.003),
        baseline=baseline or _side(0.002, backend="oneDNN (mkldnn)"),
        ratio={"median": ratio, "q1": ratio - 0.1, "q3": ratio + 0.2, "min": 1.0, "max": 2.0},
        limit={"time_s": 0.001, "gflops": 4.0, "products": []},
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


def write_bench(path: Path, records: list[dict[str, Any]]) -> Path:
    entries = [{"name": r["label"], "extra_info": {speed.RECORD_KEY: r}} for r in records]
    data = {
        "machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}},
        "datetime": "2026-01-01T00:00:00",
        "benchmarks": [{"name": "unrelated", "extra_info": {}}, *entries],
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
        Result("test_parity.py::test_forward[lstm]", "parity", "passed"),
        Result(
            "test_parity.py::test_forward[gru]",
            "parity",
            "failed",
            "output[0, 1, 2]=0.5, but should be 0.7 <gru>",
            "mismatch",
            [comparison],
        ),
        Result("test_shapes.py::test_x[elman]", "shapes", "skipped", "bidirectional not supported"),
    ]
    return results.as_dict(builtins.reference())


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    return write_bench(tmp_path / "bench.json", sweep_records())


def test_markdown_records_what_ran_and_every_result(bench: Path) -> None:
    text = bench_report.markdown(bench_report.load_benchmarks(bench))
    assert text.startswith(bench_report.MARKER + "\n# rnnspec speed report: candidate-x\n")
    assert "- torch 2.13.0+cpu, NumPy 2.4, Python 3.11" in text
    assert "- device: cpu (?); dtype: float32; torch threads: 2" in text
    assert "- machine: Test CPU, 2 CPUs" in text
    assert "baseline backends: lstm forward: oneDNN (mkldnn); lstm forward_backward:" in text
    rows = [line for line in text.splitlines() if line.startswith("| lstm | forward | ")]
    assert len(rows) == len(SWEEP)
    assert "| lstm | forward | 8 | 4 | 16 | float32 | cpu | 3 [2.7, 3.3] | 2 [1.8, 2.2] " in text
    assert "| 1.00 [0.90, 1.20] | 2 (50%) | 2 (50%) | 4 |" in text
    assert "## Warnings" not in text


def test_warnings_name_slow_paths_and_measurement_problems() -> None:
    records = [
        record(candidate=_side(0.003, noncontiguous=["weight_hh_l0"], warnings=["UserWarning: x"])),
        record(
            baseline=_side(
                0.002, backend="ATen generic (aten::lstm, oneDNN available but not used)"
            )
        ),
        record(blas="not limited (install threadpoolctl)", candidate=_side(0.003, rounds=1)),
    ]
    assert bench_report.warnings_found(records) == [
        "candidate-x: non-contiguous weights (weight_hh_l0): each call may copy them",
        "candidate-x (lstm cpu): UserWarning: x",
        "torch (lstm forward): ATen generic (aten::lstm, oneDNN available but not used)",
        "NumPy BLAS threads not limited (install threadpoolctl): NumPy timings may slow torch down",
        "fewer than 3 rounds (pytest-benchmark disabled, e.g. under xdist): the numbers are "
        "single samples",
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
    page = bench_report.render_html(bench_report.load_benchmarks(bench), conformance_data())
    assert page.startswith("<!DOCTYPE html>\n" + bench_report.MARKER)
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(image).startswith(PNG_SIGNATURE) for image in images)
    assert "<figcaption>gru float32 cpu, around T=8 B=4 H=16</figcaption>" in page
    assert "<h2>Conformance: reference</h2>" in page
    assert "output[0, 1, 2]=0.5, but should be 0.7 &lt;gru&gt;" in page


def test_conformance_report_renders_into_the_markdown(bench: Path) -> None:
    text = bench_report.markdown(bench_report.load_benchmarks(bench), conformance_data())
    assert "\n## rnnspec conformance report: reference\n" in text
    assert "| parity | 1 | 1 | 0 |" in text


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
            r"speed results of format \['v0'\], not rnnspec-speed/1",
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
    assert "Conformance: reference" in (out / "rnnspec-report.html").read_text(encoding="utf-8")
    (out / "rnnspec-report.html").write_text("<p>mine</p>", encoding="utf-8")
    assert cli.main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main([*argv, "--force"]) == 0
    assert cli.main(["report", str(tmp_path / "missing.json")]) == 2
    assert "cannot read the benchmark file" in capsys.readouterr().err
