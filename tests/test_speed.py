"""The speed machinery: sweeps, interleaving, statistics, what-ran records, the pytest run.

Nothing here asserts a wall-clock time; the sizes are tiny so the tests stay fast.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance
from rnnspec import bench_report, builtins, flops, speed
from rnnspec.harness import Unsupported
from rnnspec.protocol import Implementation

pytest_plugins = ["pytester"]

SPEED_TESTS = str(Path(conformance.__file__).resolve().parent / "test_speed.py")
QUIET = ("-p", "no:cacheprovider")
TINY = speed.point_case("lstm", (3, 2, 4))


def test_sweep_varies_one_axis_at_a_time() -> None:
    assert speed.SWEEPS["small"].points() == [
        (8, 4, 16),
        (4, 4, 16),
        (16, 4, 16),
        (8, 1, 16),
        (8, 16, 16),
        (8, 4, 8),
        (8, 4, 32),
    ]
    full = speed.SWEEPS["full"].points()
    assert full[0] == (100, 32, 256) and len(full) == len(set(full)) == 11


def test_cases_take_base_cells_with_input_size_equal_to_hidden() -> None:
    found = speed.cases(["lstm", "gru:reset_before", "elman"], "small")
    assert sorted({case.config.cell for case in found}) == ["elman", "lstm"]
    assert len(found) == 14
    assert all(c.config.input_size == c.config.hidden_size and not c.given_state for c in found)


def test_spread() -> None:
    assert speed.spread([4.0, 1.0, 3.0, 2.0]) == {
        "median": 2.5,
        "q1": 1.75,
        "q3": 3.25,
        "min": 1.0,
        "max": 4.0,
        "rounds": 4,
    }
    assert speed.spread([2.0])["q1"] == speed.spread([2.0])["q3"] == 2.0


class _Logged:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def __call__(self) -> None:
        self.log.append(self.name)

    def reset(self) -> None:
        self.log.append("reset")


def test_rounds_alternate_which_goes_first_and_pair_up() -> None:
    log: list[str] = []
    interleaved = speed.Interleaved(_Logged("candidate", log), _Logged("baseline", log))  # type: ignore[arg-type]
    interleaved.run(4)
    calls = [name for name in log if name != "reset"]
    assert calls == ["baseline", "candidate", "candidate", "baseline"] * 2
    assert len(interleaved.candidate_times) == len(interleaved.baseline_times) == 4


def test_measure_records_both_sides_the_ratio_and_the_limit() -> None:
    threads = torch.get_num_threads()
    result = speed.measure(builtins.reference(), TINY, "forward", rounds=3, warmup=1, threads=1)
    assert torch.get_num_threads() == threads
    assert (result.implementation, result.baseline_implementation) == ("reference", "torch")
    assert (result.cell, result.mode, result.steps, result.batch, result.threads) == (
        "lstm",
        "forward",
        3,
        2,
        1,
    )
    assert result.flops == flops.forward_flops(TINY.config, 3, 2)
    assert result.ratio["rounds"] == result.candidate["rounds"] == result.baseline["rounds"] == 3
    assert result.ratio["q1"] <= result.ratio["median"] <= result.ratio["q3"]
    for side in (result.candidate, result.baseline):
        assert side["gflops"] > 0 and side["fraction_of_limit"] > 0
        assert side["noncontiguous"] == [] and side["warnings"] == []
    assert result.candidate["backend"] == "ATen operators (Python loop)"
    assert result.baseline["backend"] in ("oneDNN (mkldnn)", "ATen generic (aten::lstm)")
    assert [p["shape"] for p in result.limit["products"]] == [[6, 4, 16], [2, 4, 16]]
    assert result.environment["torch"] == torch.__version__
    assert "ratio" in result.summary() and "1 threads" in result.summary()
    assert json.loads(json.dumps(result.as_dict()))["schema"] == speed.SCHEMA


def test_forward_backward_limit_is_three_forwards() -> None:
    forward = speed.matmul_limit(TINY, "forward")
    both = speed.matmul_limit(TINY, "forward_backward")
    assert both["time_s"] == pytest.approx(3 * forward["time_s"])


def test_no_baseline_and_no_gradients_are_skips() -> None:
    peephole = replace(TINY, config=TINY.config.replace(cell="lstm:peephole"))
    with pytest.raises(Unsupported, match="no torch baseline for lstm:peephole"):
        speed.measure(builtins.reference(), peephole, "forward", rounds=1, warmup=0)
    with pytest.raises(Unsupported, match="gradients not supported"):
        speed.measure(speed.numpy_reference(), TINY, "forward_backward", rounds=1, warmup=0)


def test_numpy_candidate_runs_with_one_blas_thread() -> None:
    result = speed.measure(speed.numpy_reference(), TINY, "forward", rounds=2, warmup=0)
    assert result.candidate["backend"] == "NumPy"
    assert result.numpy_blas_threads is not None
    assert result.numpy_blas_threads.startswith(("1 (", "not limited"))


def test_numpy_blas_threads_are_restored() -> None:
    functions = speed._openblas_thread_functions()
    if functions is None:
        pytest.skip("no OpenBLAS in this process")
    get, _ = functions
    before = get()
    with speed.numpy_blas_threads(1) as how:
        assert get() == 1 or how.endswith("(threadpoolctl)")
        np.ones((4, 4)) @ np.ones((4, 4))
    assert get() == before


def _noncontiguous_lstm(config, device, dtype):
    module = torch.nn.LSTM(config.input_size, config.hidden_size, device=device, dtype=dtype)
    weight = module.weight_hh_l0.detach()
    module.weight_hh_l0 = torch.nn.Parameter(weight.t().contiguous().t())
    return module


def _warning_call(module, x, hx):
    warnings.warn("planted: weights copied on every call", UserWarning, stacklevel=1)
    return module(x, hx)


def test_noncontiguous_weights_and_warnings_are_recorded() -> None:
    impl = Implementation("sloppy", _noncontiguous_lstm, call=_warning_call)
    result = speed.measure(impl, TINY, "forward", rounds=2, warmup=1)
    assert result.candidate["noncontiguous"] == ["weight_hh_l0"]
    assert result.candidate["warnings"] == ["UserWarning: planted: weights copied on every call"]
    assert any(
        "non-contiguous weights (weight_hh_l0)" in w
        for w in bench_report.warnings_found([result.as_dict()])
    )


def test_backend_labels() -> None:
    label = speed._backend_label
    assert label({"aten::_cudnn_rnn", "aten::lstm"}, True) == "cuDNN"
    assert label({"aten::mkldnn_rnn_layer", "aten::lstm"}, True) == "oneDNN (mkldnn)"
    assert label({"aten::lstm", "aten::addmm"}, True) == (
        "ATen generic (aten::lstm, oneDNN available but not used)"
    )
    assert label({"aten::gru", "aten::addmm"}, True) == "ATen generic (aten::gru)"
    assert label({"aten::addmm", "aten::sigmoid"}, False) == "ATen operators (Python loop)"


def test_command_line_prints_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--cell", "elman", "-T", "3", "-B", "2", "-H", "4", "--rounds", "2", "--warmup", "0"]
    assert speed.main([*argv, "--mode", "forward", "--mode", "forward_backward"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(" ratio " in line for line in lines)
    assert lines[0].startswith("elman I=4 H=4 T=3 B=2 hx=None dtype=float32 forward: reference")


def test_speed_checks_are_deselected_without_m_speed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(SPEED_TESTS, "--impl", "reference", *QUIET)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["* deselected*"])


def test_speed_run_writes_benchmark_json_with_ratios(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base point of the small sweep, every cell, both modes: 6 benchmarks, then a report."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # else pytest-benchmark is off
    bench = tmp_path / "bench.json"
    result = pytester.runpytest(
        SPEED_TESTS,
        "--impl",
        "reference",
        "-m",
        "speed",
        "-k",
        "I16-H16-T8-B4-",
        f"--benchmark-json={bench}",
        *QUIET,
    )
    assert result.parseoutcomes()["passed"] == 6
    result.stdout.fnmatch_lines(["speed*6*0*"])
    entries = json.loads(bench.read_text())["benchmarks"]
    records = [entry["extra_info"][speed.RECORD_KEY] for entry in entries]
    assert sorted((r["cell"], r["mode"]) for r in records) == [
        (cell, mode) for cell in ("elman", "gru", "lstm") for mode in speed.MODES
    ]
    for entry, record in zip(entries, records, strict=True):
        rounds = speed.SWEEPS["small"].rounds
        assert entry["stats"]["rounds"] == record["candidate"]["rounds"] == rounds
        assert record["ratio"]["rounds"] == rounds and record["ratio"]["median"] > 0
        assert entry["group"] == f"{record['cell']} {record['mode']} float32 cpu"
    written = bench_report.write(bench, tmp_path / "report")
    assert written[1].read_text().count("data:image/png;base64,") == 3
