"""The speed machinery: sweeps, interleaving, statistics, what-ran records, the pytest run.

Nothing here asserts a wall-clock time; the sizes are tiny so the tests stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

import conformance
from rnnspec import bench_report, flops, implementations, report_render, speed
from rnnspec.harness import Unsupported
from rnnspec.protocol import Implementation

pytest_plugins = ["pytester"]

SPEED_TESTS = str(Path(conformance.__file__).resolve().parent / "test_speed.py")
QUIET = ("-p", "no:cacheprovider")
TINY = speed.point_case("lstm", (3, 2, 4))
QUICK = speed.Precision(calls=1, min_rounds=2, max_rounds=2)


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


def test_cases_take_every_cell_variants_included() -> None:
    found = speed.cases(["lstm", "gru:reset_before", "elman"], "small")
    assert [case.config.cell for case in found[::7]] == ["lstm", "gru:reset_before", "elman"]
    assert len(found) == 21
    assert all(c.config.input_size == c.config.hidden_size and not c.given_state for c in found)


def test_a_cell_torch_nn_lacks_has_the_generated_reference_as_baseline() -> None:
    baseline, note = speed.baseline_for(speed.point_case("gru:reset_before", (3, 2, 4)))
    assert (baseline.name, note) == ("reference", "torch.nn has no gru:reset_before")
    assert speed.baseline_for(TINY)[0].name == "torch" and speed.baseline_for(TINY)[1] is None


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


@pytest.mark.parametrize(
    ("n", "confidence", "ranks"),
    [
        (5, 0.95, None),
        (6, 0.95, (1, 6)),
        (10, 0.95, (2, 9)),
        (20, 0.95, (6, 15)),
        (20, 0.5, (8, 13)),
    ],
)
def test_median_interval_is_two_order_statistics(
    n: int, confidence: float, ranks: tuple[int, int] | None
) -> None:
    """Ranks from the binomial table: P(Bin(20, 1/2) <= 5) = 0.021 <= 0.025 < P(<= 6) = 0.058,
    P(<= 7) = 0.132 <= 0.25 < P(<= 8) = 0.252."""
    values = [float(v) for v in range(n, 0, -1)]  # the value of rank r is r
    assert speed.median_interval(values, confidence) == (
        None if ranks is None else (float(ranks[0]), float(ranks[1]))
    )


class FakeClock:
    """A clock that moves only when a fake run says it took time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """A run that takes its durations, in turn, from a list (cycled), on a fake clock."""

    def __init__(self, name: str, durations: list[float], clock: FakeClock, log: list[str]):
        self.name, self.durations, self.clock, self.log = name, durations, clock, log
        self.calls = 0

    def __call__(self) -> None:
        self.log.append(self.name)
        self.clock.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1

    def reset(self) -> None:
        self.log.append("reset")


def _interleaved(
    candidate: list[float], baseline: list[float], precision: speed.Precision, **visit: Any
) -> tuple[speed.Interleaved, list[str]]:
    clock, log = FakeClock(), []
    runs = (
        Scripted("candidate", candidate, clock, log),
        Scripted("baseline", baseline, clock, log),
    )
    interleaved = speed.Interleaved(*runs, precision, timer=clock, clock=clock, **visit)  # type: ignore[arg-type]
    return interleaved, log


def test_rounds_alternate_which_goes_first_and_pair_up() -> None:
    interleaved, log = _interleaved([2.0], [1.0], speed.Precision(calls=1, min_rounds=6))
    interleaved.time_rounds()
    calls = [name for name in log if name != "reset"]
    assert calls == ["baseline", "candidate", "candidate", "baseline"] * 3
    assert log[:2] == ["reset", "baseline"]  # gradients dropped before every call
    assert interleaved.rounds.candidate == [2.0] * 6 and interleaved.rounds.baseline == [1.0] * 6
    assert interleaved.stopped == "precision"


def test_a_round_keeps_each_sides_fastest_call() -> None:
    """Three calls a side a round; one in three interrupted (10x longer): the ratio is exact."""
    interleaved, log = _interleaved([2.0, 20.0, 2.0], [1.0, 1.0, 10.0], speed.Precision())
    interleaved.time_rounds()
    calls = [name for name in log if name != "reset"]
    first, second = ["baseline", "candidate"], ["candidate", "baseline"]
    assert calls[:12] == first + second + first + second + first + second
    assert interleaved.ratios() == [2.0] * 20 and interleaved.stopped == "precision"


def test_rounds_go_on_until_the_interval_is_narrow() -> None:
    """Ratios 2 +- 10% in a fixed pattern: the interval gets within 5% after 30 rounds."""
    pattern = [1.8, 2.2, 1.9, 2.1, 2.0]
    precision = speed.Precision(calls=1, min_rounds=6, budget_s=1e9)
    interleaved, _ = _interleaved(pattern, [1.0], precision)
    interleaved.time_rounds()
    ratios = interleaved.ratios()
    assert (interleaved.stopped, len(ratios)) == ("precision", 30)
    assert speed.within(ratios, interleaved.precision)
    assert not speed.within(ratios[:-1], interleaved.precision)
    stats = speed.ratio_stats(interleaved.rounds, interleaved.precision, interleaved.stopped)
    assert stats["converged"] and stats["ci_low"] >= 1.9 and stats["ci_high"] <= 2.1


def test_a_point_that_never_converges_stops_at_its_budget_or_round_limit() -> None:
    halves_and_doubles = ([0.5, 2.0], [1.0])
    budget = speed.Precision(calls=1, min_rounds=6, budget_s=30.0, max_rounds=1000)
    interleaved, _ = _interleaved(*halves_and_doubles, budget)
    interleaved.time_rounds()
    assert interleaved.stopped == "budget"
    assert 30.0 <= interleaved.clock() < 30.0 + 3.0  # at most one round past it
    stats = speed.ratio_stats(interleaved.rounds, budget, interleaved.stopped)
    assert not stats["converged"] and stats["stopped"] == "budget"
    interleaved, _ = _interleaved(
        *halves_and_doubles, speed.Precision(calls=1, min_rounds=6, max_rounds=12, budget_s=1e9)
    )
    interleaved.time_rounds()
    assert (interleaved.stopped, len(interleaved.ratios())) == ("max_rounds", 12)


def test_rounds_go_on_for_the_minimum_seconds_though_the_interval_is_narrow() -> None:
    """Exact ratios are within any width at once; rounds of 0.375 s go on to 3 s."""
    precision = speed.Precision(calls=1, min_rounds=2, min_s=3.0)
    interleaved, _ = _interleaved([0.25], [0.125], precision)
    interleaved.time_rounds()
    assert (interleaved.stopped, len(interleaved.ratios())) == ("precision", 8)


def test_a_point_timed_in_visits_pools_their_rounds() -> None:
    """Three visits: the first two take their share (2 rounds, 1 s) and stop; the last goes
    on over all the rounds until the interval is narrow (the visit at ratio 3 is outvoted)."""
    precision = speed.Precision(calls=1, min_rounds=6, min_s=3.0, budget_s=1e9)
    rounds = speed.Rounds()
    for number, candidate in enumerate([2.0, 3.0, 2.0], start=1):
        interleaved, _ = _interleaved(
            [candidate], [1.0], precision, rounds=rounds, visit=(number, 3)
        )
        interleaved.time_rounds()
        assert interleaved.stopped == ("visit" if number < 3 else "precision")
    assert rounds.visit_starts == [0, 2, 4] and rounds.visit_seconds == [6.0, 8.0, 24.0]
    assert rounds.ratios() == [2.0, 2.0, 3.0, 3.0] + [2.0] * 8
    assert rounds.visits() == [
        {"median": 2.0, "rounds": 2, "seconds": 6.0},
        {"median": 3.0, "rounds": 2, "seconds": 8.0},
        {"median": 2.0, "rounds": 8, "seconds": 24.0},
    ]
    assert speed.ratio_stats(rounds, precision, "precision")["converged"]  # 3: too few to judge


def test_the_last_visit_takes_its_share_though_the_earlier_ones_converged() -> None:
    """pytest-benchmark times the last visit: it needs rounds of its own."""
    rounds = _visits([[2.0] * 30])
    precision = speed.Precision(calls=1, min_rounds=4, min_s=0.0)
    interleaved, _ = _interleaved([2.0], [1.0], precision, rounds=rounds, visit=(2, 2))
    interleaved.time_rounds()
    assert interleaved.stopped == "precision" and [v["rounds"] for v in rounds.visits()] == [30, 2]


def _visits(ratios_per_visit: list[list[float]]) -> speed.Rounds:
    rounds = speed.Rounds()
    for ratios in ratios_per_visit:
        rounds.visit_starts.append(len(rounds.baseline))
        rounds.visit_seconds.append(1.0)
        rounds.candidate += ratios
        rounds.baseline += [1.0] * len(ratios)
    return rounds


def test_visits_that_disagree_widen_the_interval_and_the_point_is_not_converged() -> None:
    """Six visits, one at ratio 2.5: the rounds alone say 2 [2, 2]; the visits' range is a
    97% interval, [2, 2.5], beyond +-5%."""
    one_off = _visits([[2.0] * 10] * 5 + [[2.5] * 10])
    stats = speed.ratio_stats(one_off, speed.Precision(), "precision")
    assert (stats["median"], stats["ci_low"], stats["ci_high"]) == (2.0, 2.0, 2.5)
    assert (stats["converged"], stats["stopped"]) == (False, "visits_disagree")
    steady = speed.ratio_stats(
        _visits([[2.0] * 10] * 5 + [[2.02] * 10]), speed.Precision(), "precision"
    )
    assert (steady["ci_high"], steady["converged"]) == (2.02, True)
    five = speed.ratio_stats(
        _visits([[2.0] * 10] * 4 + [[2.5] * 10]), speed.Precision(), "precision"
    )
    assert (five["ci_high"], five["converged"]) == (2.0, True)  # no 95% interval from 5


def test_cpu_time_only_where_it_is_what_an_idle_machine_would_show() -> None:
    torch_nn, numpy_gold = implementations.torch_nn(), speed.numpy_reference()
    jax_like = SimpleNamespace(framework="jax")  # XLA runs its own thread pool
    assert speed.choose_clock("auto", 1, TINY, torch_nn, numpy_gold) == "cpu"
    assert speed.choose_clock("auto", 2, TINY, torch_nn, numpy_gold) == "wall"
    assert speed.choose_clock("auto", 1, TINY.replace(device="cuda"), torch_nn) == "wall"
    assert speed.choose_clock("auto", 1, TINY, torch_nn, jax_like) == "wall"  # type: ignore[arg-type]
    assert speed.choose_clock("wall", 1, TINY, torch_nn) == "wall"


def test_build_and_first_call_are_timed_apart_from_the_steady_state() -> None:
    """A candidate that compiles on its first call (5 s on the fake clock) and takes 2 s to
    build: both recorded, neither in the rounds."""
    clock = FakeClock()
    calls: list[int] = []

    def factory(config, device, dtype):
        clock.now += 2.0
        return torch.nn.LSTM(config.input_size, config.hidden_size, device=device, dtype=dtype)

    def compiling_call(module, x, hx):
        clock.now += 5.0 if not calls else 0.001
        calls.append(1)
        return module(x, hx) if hx is not None else module(x)

    impl = Implementation("compiling", factory, call=compiling_call)
    prepared = speed.PreparedCall(impl, TINY, "forward", clock)
    assert (prepared.build_s, prepared.first_call_s) == (2.0, 5.0)
    before = clock.now
    prepared()
    assert clock.now - before == pytest.approx(0.001)


class _Lazy:
    """An array whose value exists only once it is asked for (as JAX's dispatch returns)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __array__(self, dtype=None, copy=None):
        self.log.append("waited")
        return np.zeros(2)


def test_results_of_other_frameworks_are_waited_for() -> None:
    log: list[str] = []
    block = speed.completion("jax", None)
    block((_Lazy(log), (_Lazy(log), _Lazy(log))))
    assert log == ["waited"] * 3
    speed.completion("torch", torch.device("cpu"))((_Lazy(log),))
    assert log == ["waited"] * 3  # torch on the CPU is synchronous: nothing to wait for


def test_measure_in_visits_returns_the_result_at_the_last() -> None:
    """Fresh instances each visit; the rounds pool, the build and first call are the first
    visit's."""
    rounds = speed.Rounds()
    reference, four = implementations.reference(), speed.Precision(min_rounds=4, max_rounds=4)
    first = speed.measure(reference, TINY, "forward", precision=four, rounds=rounds, visit=(1, 2))
    assert first is None and len(rounds.candidate) == 2
    startup = dict(rounds.startup)
    result = speed.measure(reference, TINY, "forward", precision=four, rounds=rounds, visit=(2, 2))
    assert result is not None and result.ratio["rounds"] == len(result.ratio["visits"]) * 2 == 4
    assert rounds.startup == startup
    assert (result.candidate["build_s"], result.candidate["first_call_s"]) == startup["candidate"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_calls_run_pinned_to_one_cpu_and_the_affinity_comes_back() -> None:
    before = os.sched_getaffinity(0)
    cpu = speed.default_cpu(1)
    assert cpu == min(before) and speed.default_cpu(2) is None  # several threads: not pinned
    with speed.pinned(cpu):
        assert os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before
    result = speed.measure(implementations.reference(), TINY, "forward", precision=QUICK, threads=1)
    assert result is not None and result.cpu == cpu and os.sched_getaffinity(0) == before
    unpinned = speed.measure(
        implementations.reference(), TINY, "forward", precision=QUICK, threads=1, cpu=None
    )
    assert unpinned is not None and unpinned.cpu is None
    with pytest.raises(
        ValueError, match=r"cannot pin to CPU 4096: this process may run on CPUs \d"
    ):
        speed.measure(implementations.reference(), TINY, "forward", precision=QUICK, cpu=4096)
    with pytest.raises(ValueError, match="cpu must be a CPU number"):
        speed.measure(implementations.reference(), TINY, "forward", precision=QUICK, cpu="first")


def test_cpu_choices_on_the_command_line() -> None:
    assert [speed.cpu_choice(text) for text in ("auto", "none", "1")] == ["auto", None, 1]
    with pytest.raises(argparse.ArgumentTypeError, match="must be a CPU number"):
        speed.cpu_choice("-1")


def test_measure_records_both_sides_the_ratio_and_the_limit() -> None:
    threads = torch.get_num_threads()
    exact = speed.Precision(calls=2, min_rounds=6, max_rounds=6)
    result = speed.measure(implementations.reference(), TINY, "forward", precision=exact, threads=1)
    assert torch.get_num_threads() == threads
    assert (result.implementation, result.baseline_implementation) == ("reference", "torch")
    assert result.baseline_note is None
    assert (result.cell, result.mode, result.steps, result.batch, result.threads) == (
        "lstm",
        "forward",
        3,
        2,
        1,
    )
    assert result.flops == flops.forward_flops(TINY.config, 3, 2)
    assert result.ratio["rounds"] == result.candidate["rounds"] == result.baseline["rounds"] == 6
    ratio = result.ratio
    assert ratio["ci_low"] <= ratio["median"] <= ratio["ci_high"]
    assert ratio["stopped"] in ("precision", "max_rounds")
    assert ratio["converged"] == (ratio["stopped"] == "precision")
    for side in (result.candidate, result.baseline):
        assert side["gflops"] > 0 and side["fraction_of_limit"] > 0
        assert side["build_s"] > 0 and side["first_call_s"] > 0
        assert side["noncontiguous"] == [] and side["warnings"] == []
    assert result.candidate["backend"] == "ATen operators (Python loop)"
    assert result.baseline["backend"] in ("oneDNN (mkldnn)", "ATen generic (aten::lstm)")
    assert [p["shape"] for p in result.limit["products"]] == [[6, 4, 16], [2, 4, 16]]
    assert result.environment["torch"] == torch.__version__
    assert "interval" in result.summary() and "1 threads" in result.summary()
    assert json.loads(json.dumps(result.as_dict()))["schema"] == speed.SCHEMA


def test_a_variant_is_timed_against_the_generated_reference() -> None:
    peephole = speed.point_case("lstm:peephole", (3, 2, 4))
    result = speed.measure(implementations.reference(), peephole, "forward", precision=QUICK)
    assert (result.baseline_implementation, result.baseline_note) == (
        "reference",
        "torch.nn has no lstm:peephole",
    )


def test_forward_backward_limit_is_three_forwards() -> None:
    limits = speed.Limits(timer=lambda shape, count, dtype, device: 1e-3 * count)
    forward = speed.matmul_limit(TINY, "forward", 1, limits)
    both = speed.matmul_limit(TINY, "forward_backward", 1, limits)
    assert forward["time_s"] == pytest.approx(1e-3 * (1 + 3))
    assert both["time_s"] == pytest.approx(3 * forward["time_s"])


class StallingTimer:
    """``torch.mm`` timings: 1 GFLOP/s at every shape, 1000x slower for ``stalled`` calls."""

    def __init__(self, stalls: int) -> None:
        self.stalls, self.calls = stalls, []

    def __call__(self, shape, count, dtype, device) -> float:
        self.calls.append(shape)
        seconds = 2 * shape[0] * shape[1] * shape[2] * count / 1e9
        if shape == (64, 64, 64) and self.stalls:
            self.stalls -= 1
            return seconds * 1000
        return seconds


def test_a_stalled_limit_is_measured_again() -> None:
    timer = StallingTimer(stalls=1)
    limits = speed.Limits(timer=timer)
    limits.seconds((8, 8, 8), 4, "float32", "cpu", 1)
    seconds, flags = limits.seconds((64, 64, 64), 4, "float32", "cpu", 1)
    assert flags == [] and seconds == pytest.approx(2 * 64**3 * 4 / 1e9)
    assert timer.calls == [(8, 8, 8), (64, 64, 64), (64, 64, 64)]


def test_a_limit_that_stays_inconsistent_is_flagged() -> None:
    limits = speed.Limits(timer=StallingTimer(stalls=3))
    limits.seconds((8, 8, 8), 4, "float32", "cpu", 1)
    seconds, flags = limits.seconds((64, 64, 64), 4, "float32", "cpu", 1)
    assert seconds == pytest.approx(2 * 64**3 * 4 / 1e6)
    assert flags == [
        "torch.mm (64x64)@(64x64): 0.001 GFLOP/s, under 1/3 of the 1 GFLOP/s of the "
        "smaller (8x8)@(8x8)"
    ]
    seconds, flags = limits.seconds((64, 64, 64), 4, "float32", "cpu", 1)
    assert seconds == pytest.approx(2 * 64**3 * 4 / 1e9)  # the best is kept
    assert flags == ["torch.mm (64x64)@(64x64): 1 GFLOP/s, but 0.001 GFLOP/s when measured before"]


def test_a_limit_unlike_its_previous_measurement_is_flagged() -> None:
    slow = [True]
    limits = speed.Limits(timer=lambda shape, count, dtype, device: 10.0 if slow[0] else 1.0)
    assert limits.seconds((8, 8, 8), 1, "float32", "cpu", 1) == (10.0, [])
    slow[0] = False
    seconds, flags = limits.seconds((8, 8, 8), 1, "float32", "cpu", 1)
    assert seconds == 1.0
    assert flags == [
        "torch.mm (8x8)@(8x8): 1.02e-06 GFLOP/s, but 1.02e-07 GFLOP/s when measured before"
    ]


def test_no_baseline_and_no_gradients_are_skips() -> None:
    peephole = replace(TINY, config=TINY.config.replace(cell="lstm:peephole"))
    with pytest.raises(Unsupported, match="no torch baseline for lstm:peephole"):
        speed.measure(
            implementations.reference(), peephole, "forward", baseline=implementations.torch_nn()
        )
    with pytest.raises(Unsupported, match="gradients not supported"):
        speed.measure(speed.numpy_reference(), TINY, "forward_backward", precision=QUICK)


def test_numpy_candidate_runs_with_one_blas_thread() -> None:
    result = speed.measure(speed.numpy_reference(), TINY, "forward", precision=QUICK)
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
    result = speed.measure(impl, TINY, "forward", precision=QUICK, warmup=1)
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
    argv = ["--cell", "elman", "-T", "3", "-B", "2", "-H", "4", "--budget", "0", "--warmup", "0"]
    assert speed.main([*argv, "--mode", "forward", "--mode", "forward_backward"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(" ratio " in line for line in lines)
    visits = ["--visits", "2", "--min-seconds", "0", "--budget", "1"]
    assert speed.main([*argv[:8], *visits, "--warmup", "0"]) == 0
    assert " rounds in 2 visits" in capsys.readouterr().out
    assert lines[0].startswith("elman I=4 H=4 T=3 B=2 hx=None dtype=float32 forward: reference")


def test_speed_checks_are_deselected_without_m_speed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(SPEED_TESTS, "--impl", "reference", *QUIET)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["* deselected*"])


def _speed_run(pytester: pytest.Pytester, bench: Path, impl: str, *args: str) -> Any:
    """In a subprocess: in-process runs one after another re-imported torch modules that
    register operators, which torch refuses the second time (the second run failed when
    these tests ran on their own)."""
    return pytester.runpytest_subprocess(
        SPEED_TESTS, "--impl", impl, "-m", "speed", f"--benchmark-json={bench}", *args, *QUIET
    )


def test_speed_run_writes_benchmark_json_with_ratios(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base point of the small sweep, the LSTMs, both modes: 6 benchmarks (the
    variants against the generated reference), with --torch-threads recorded; then a report."""
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # else pytest-benchmark is off
    bench = tmp_path / "bench.json"
    args = ("-k", "lstm and I16-H16-T8-B4-", "--torch-threads", "2", "--speed-visits", "2")
    result = _speed_run(pytester, bench, "reference", *args, "-v")
    assert result.parseoutcomes()["passed"] == 12  # each point twice, all first visits first
    ran = [line for line in result.outlines if " PASSED" in line]
    assert ["visit1of2" in line for line in ran] == [True] * 6 + [False] * 6
    data = json.loads(bench.read_text())
    entries = data["benchmarks"]
    records = [entry["extra_info"][speed.RECORD_KEY] for entry in entries]
    assert sorted((r["cell"], r["mode"], r["baseline_implementation"]) for r in records) == [
        (cell, mode, baseline)
        for cell, baseline in (("lstm", "torch"), ("lstm:coupled", "reference"))
        + (("lstm:peephole", "reference"),)
        for mode in speed.MODES
    ]
    for entry, record in zip(entries, records, strict=True):
        visits = record["ratio"]["visits"]
        assert entry["stats"]["rounds"] == visits[-1]["rounds"]  # pytest-benchmark: last visit
        assert record["ratio"]["rounds"] == record["candidate"]["rounds"] >= 20
        assert sum(visit["rounds"] for visit in visits) == record["ratio"]["rounds"]
        assert record["ratio"]["stopped"] in ("precision", "budget")
        assert record["threads"] == 2
        assert entry["group"] == f"{record['cell']} {record['mode']} float32 cpu"
    assert data[speed.LEFT_OUT_KEY] == []
    written = bench_report.write(bench, tmp_path / "report")
    page = written[1].read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "torch.nn has no lstm:peephole" in page


def test_cells_the_candidate_lacks_are_listed_with_the_reason(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    bench = tmp_path / "bench.json"
    result = _speed_run(pytester, bench, "torch", "-k", "gru and T8-B4-", "--speed-visits", "2")
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == 4 and "errors" not in outcomes  # listed once, at the last visit
    left_out = json.loads(bench.read_text())[speed.LEFT_OUT_KEY]
    assert [(item["cell"], item["mode"]) for item in left_out] == [
        ("gru:reset_before", mode) for mode in speed.MODES
    ]
    assert left_out[0]["reason"].startswith("cell gru:reset_before not supported")
    text = report_render.markdown(bench_report.report(bench_report.load_benchmarks(bench)))
    assert (
        "- gru:reset_before (forward, forward+backward): cell gru:reset_before not supported"
        in (text)
    )
