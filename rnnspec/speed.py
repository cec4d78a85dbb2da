"""Speed: a candidate and PyTorch's own kernel timed on the same configs, interleaved.

Each round times the candidate and the baseline (``torch.nn``, or the generated reference
for a cell torch.nn lacks) back to back, in alternating order, so that drifts of the machine
(other processes, clock, caches) hit both alike. Rounds go on until the median of the
per-round ratios candidate/baseline is known to a stated precision (its distribution-free
confidence interval from order statistics) or the point's time budget is spent. A sweep
times each point in several visits spread over the run, with fresh instances each time, so
that no one moment of a shared machine decides a point's ratio; visits that disagree widen
the interval.
The thread count is fixed and recorded; NumPy candidates run with one BLAS thread (an
idle OpenBLAS pool spinning after a product halves torch's speed, failure-modes #31).
FLOPs come from the spec (:mod:`rnnspec.flops`); the machine's matrix-product speed at
the same shapes (``torch.mm``, best of several timings, re-measured when it disagrees with
earlier ones) is the limit each implementation is measured against.

Usable without pytest: :func:`measure` returns a :class:`SpeedResult`;
``python -m rnnspec.speed --impl reference --cell lstm`` prints one.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec import flops, frameworks, implementations, registry
from rnnspec.cases import Case
from rnnspec.config import RNNConfig
from rnnspec.harness import Candidate, Unsupported, make_inputs, no_grad, require
from rnnspec.protocol import Capabilities, Implementation
from rnnspec.results import environment

MODES = ("forward", "forward_backward")
SCHEMA = "rnnspec-speed/2"
RECORD_KEY = "rnnspec_speed"
"""The key of a :class:`SpeedResult` in a pytest-benchmark entry's ``extra_info``."""
LEFT_OUT_KEY = "rnnspec_speed_left_out"
"""The key of the points not measured, with the reason, in the benchmark JSON."""
Clock = Callable[[], float]


@dataclass(frozen=True)
class Precision:
    """How a point is sampled: rounds of ``calls`` calls of each side, until the ratio's
    confidence interval is narrow enough or the budget is spent.

    A round's time for each side is the fastest of its ``calls`` calls (a call that the
    scheduler interrupted only ever takes longer). Rounds go on until the median ratio's
    ``confidence`` interval lies within ``half_width`` of it (relative: 0.05 is +-5%),
    after at least ``min_rounds`` and ``min_s`` seconds; they stop unconverged after
    ``max_rounds`` or ``budget_s`` seconds of rounds.

    ``min_s`` is there because rounds a few milliseconds apart share the machine's moment
    (its clock, caches, neighbours): 20 of them gave a 95% interval of +-1.6% for a ratio
    whose median moved by 2.3% (standard deviation) from one measurement to the next; rounds
    spread over a second gave +-0.8% for a spread of 0.4%.
    """

    calls: int = 3
    half_width: float = 0.05
    confidence: float = 0.95
    min_rounds: int = 20
    min_s: float = 1.0
    max_rounds: int = 2000
    budget_s: float = 10.0

    @property
    def least_s(self) -> float:
        """The seconds of rounds a point takes at least: ``min_s``, within the budget."""
        return min(self.min_s, self.budget_s)


@dataclass(frozen=True)
class Sweep:
    """A base point (T, B, H) and the values each axis takes while the others stay put;
    how each point is sampled, and in how many visits (spread over the run, one after the
    other for every point)."""

    base: tuple[int, int, int]
    steps: tuple[int, ...]
    batches: tuple[int, ...]
    hiddens: tuple[int, ...]
    precision: Precision
    warmup: int
    visits: int = 9

    def points(self) -> list[tuple[int, int, int]]:
        steps, batch, hidden = self.base
        found = [self.base]
        found += [(t, batch, hidden) for t in self.steps]
        found += [(steps, b, hidden) for b in self.batches]
        found += [(steps, batch, h) for h in self.hiddens]
        return list(dict.fromkeys(found))


SWEEPS = {
    "small": Sweep((8, 4, 16), (4, 16), (1, 16), (8, 32), Precision(budget_s=5.0), warmup=3),
    "full": Sweep(
        (100, 32, 256),
        (25, 50, 200, 400),
        (1, 8, 128),
        (64, 128, 512),
        Precision(budget_s=30.0),
        warmup=3,
    ),
}


def cases(
    cells: Iterable[str], sweep: str = "small", dtype: str = "float32", device: str = "cpu"
) -> list[Case]:
    """The sweep's points for every cell, variants and user specs included."""
    points = SWEEPS[sweep].points()
    return [point_case(cell, point, dtype, device) for cell in cells for point in points]


def point_case(
    cell: str, point: tuple[int, int, int], dtype: str = "float32", device: str = "cpu"
) -> Case:
    """The case timed at ``point`` (T, B, H): input size H, no given state."""
    steps, batch, hidden = point
    config = RNNConfig(cell=cell, input_size=hidden, hidden_size=hidden)
    return Case(config, steps, batch, dtype, device, given_state=False)


def baseline_for(case: Case) -> tuple[Implementation, str | None]:
    """``torch.nn`` where it runs the case, else the generated reference, with why."""
    torch_nn = implementations.torch_nn()
    if torch_nn.capabilities.unsupported(case.config, dtype=case.dtype, device=case.device):
        return implementations.reference(), f"torch.nn has no {case.config.cell}"
    return torch_nn, None


# -- what runs --------------------------------------------------------------------------
class PreparedCall:
    """One implementation built for a case; calling it runs ``mode`` once, to completion.

    Building the instance and the first call (where JIT compilers trace and compile and
    runtimes create sessions) are timed apart from the steady state: ``build_s`` and
    ``first_call_s``.
    """

    def __init__(
        self, impl: Implementation, case: Case, mode: str, clock: Clock = time.perf_counter
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        require(impl, case, gradients=mode == "forward_backward")
        self.impl, self.case, self.mode = impl, case, mode
        start = clock()
        self.candidate = Candidate(impl, case, make_inputs(case, impl))
        self.build_s = clock() - start
        self.framework = self.candidate.framework
        self.x, self.hx = self.candidate.prepare()
        self.grad_output: Any = None
        self.block = completion(impl.framework, self.candidate.device)
        with warnings.catch_warnings(record=True) as caught, no_grad(self.candidate):
            warnings.simplefilter("always")
            start = clock()
            outputs = self.candidate.run(self.x, self.hx)
            self.block((outputs.output, *outputs.states))
            self.first_call_s = clock() - start
        self.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        if mode == "forward_backward":
            rng = np.random.default_rng(case.seed)
            self.grad_output = self.candidate.tensor(rng.standard_normal(outputs.output.shape))
        self.step = self._step()

    def __call__(self) -> None:
        self.step()

    def _step(self) -> Callable[[], None]:
        """The timed call, with framework, mode and device settled here, outside the timing."""
        call = functools.partial(self.impl.call, self.candidate.instance, self.x, self.hx)
        block, framework = self.block, self.framework
        if self.mode == "forward":

            def forward() -> None:
                with framework.no_grad():
                    block(call())

            return forward
        backward = framework.timed_backward(self.candidate, call, self.grad_output)

        def forward_backward() -> None:
            block(backward())

        return forward_backward

    def reset(self) -> None:
        """Drop accumulated gradients (outside the timed region)."""
        for param in _parameters(self.candidate.instance):
            param.grad = None

    def noncontiguous(self) -> list[str]:
        """Names of the instance's parameters that are not contiguous in memory."""
        named = getattr(self.candidate.instance, "named_parameters", None)
        if named is None:
            return []
        return [name for name, param in named() if not param.is_contiguous()]

    def backend(self) -> tuple[str, list[str]]:
        """Which kernels ran (from the profiler): a label and the costliest operators."""
        if self.framework.name != "torch":
            return self.framework.title, []
        import torch
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.candidate.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with profile(activities=activities) as prof:
                self()
        events = prof.key_averages()
        names = {event.key for event in events}
        top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
        ops = [event.key for event in top if event.key.startswith("aten::")][:5]
        return _backend_label(names, torch.backends.mkldnn.is_available()), ops


def _parameters(instance: Any) -> list[Any]:
    parameters = getattr(instance, "parameters", None)
    return list(parameters()) if callable(parameters) else []


def completion(framework: str, device: Any) -> Callable[[Any], None]:
    """What waits until a call's results exist (asynchronous frameworks return early):
    the framework's :meth:`~rnnspec.frameworks.Framework.synchronize` on ``device``."""
    return functools.partial(frameworks.get(framework).synchronize, device)


def _backend_label(names: set[str], mkldnn_available: bool) -> str:
    if any("cudnn_rnn" in name for name in names):
        return "cuDNN"
    if any("miopen_rnn" in name for name in names):
        return "MIOpen"
    if any("mkldnn_rnn" in name for name in names):
        return "oneDNN (mkldnn)"
    fused = {"aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu"} & names
    if fused:  # torch has a oneDNN kernel for LSTM only
        missed = mkldnn_available and "aten::lstm" in fused
        note = ", oneDNN available but not used" if missed else ""
        return f"ATen generic ({', '.join(sorted(fused))}{note})"
    return "ATen operators (Python loop)"


# -- interleaved timing -----------------------------------------------------------------
class EnoughRounds(BaseException):
    """Raised from pytest-benchmark's setup when the point has its precision or budget.

    A BaseException, so that pytest-benchmark (which marks a benchmark that raised an
    ``Exception`` as failed) keeps the rounds timed so far.
    """


@dataclass
class Rounds:
    """A point's rounds so far, over its visits: each side's round times, where each visit
    began and how many seconds it took, and each side's build and first-call seconds in the
    first visit (where compilers and runtimes did their work)."""

    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    visit_starts: list[int] = field(default_factory=list)
    visit_seconds: list[float] = field(default_factory=list)
    startup: dict[str, tuple[float, float]] = field(default_factory=dict)

    def first_visit(self, interleaved: Interleaved) -> None:
        """Keep the sides' build and first-call seconds, if this is the first visit."""
        for side in ("candidate", "baseline"):
            call = getattr(interleaved, side)
            self.startup.setdefault(side, (call.build_s, call.first_call_s))

    def ratios(self) -> list[float]:
        pairs = zip(self.candidate, self.baseline, strict=True)
        return [candidate / baseline for candidate, baseline in pairs]

    def visits(self) -> list[dict[str, float]]:
        """Each visit that timed a round: its median ratio, rounds and seconds."""
        ratios = self.ratios()
        ends = [*self.visit_starts[1:], len(ratios)]
        return [
            {"median": statistics.median(ratios[start:end]), "rounds": end - start, "seconds": s}
            for start, end, s in zip(self.visit_starts, ends, self.visit_seconds, strict=True)
            if end > start
        ]


@dataclass
class Interleaved:
    """Rounds of candidate and baseline calls, back to back, alternating which goes first,
    until :class:`Precision` says the ratio is known well enough.

    A round is ``precision.calls`` pairs, e.g. baseline, candidate, candidate, baseline,
    baseline, candidate; each side's round time is its fastest call. The pieces fit
    ``benchmark.pedantic(target, setup=, teardown=)``: target times the round's last
    candidate call, setup (which raises :class:`EnoughRounds` when done) and teardown the
    calls before and after it, outside pytest-benchmark's timed region.

    A point may be timed in several visits, spread over a run so that no one moment of
    the machine decides its ratio: ``visit`` is (this visit, the point's visits) and
    ``rounds`` holds the earlier visits' rounds. A visit before the last takes its share
    of the minimum rounds and seconds and stops (``"visit"``); the last takes its share too,
    then goes on until the precision is met over all the rounds.
    """

    candidate: PreparedCall
    baseline: PreparedCall
    precision: Precision = field(default_factory=Precision)
    timer: Clock = time.perf_counter
    clock: Clock = time.perf_counter
    rounds: Rounds = field(default_factory=Rounds)
    visit: tuple[int, int] = (1, 1)
    started: float | None = None
    stopped: str | None = None
    _round: dict[str, list[float]] = field(default_factory=dict)
    _after: list[str] = field(default_factory=list)

    def warm_up(self, rounds: int) -> None:
        for _ in range(rounds):
            self.baseline.reset()
            self.candidate.reset()
            self.candidate()
            self.baseline()

    def ratios(self) -> list[float]:
        return self.rounds.ratios()

    def stop_reason(self) -> str | None:
        """``"visit"``, ``"precision"``, ``"max_rounds"``, ``"budget"``, or None to go on."""
        now, rounds, precision = self.clock(), self.rounds, self.precision
        if self.started is None:
            self.started = now
            rounds.visit_starts.append(len(rounds.baseline))
            rounds.visit_seconds.append(0.0)
        rounds.visit_seconds[-1] = now - self.started
        number, count = self.visit
        if not self._share_done(count):
            return None
        if number < count:
            return "visit"
        done, elapsed = len(rounds.baseline), sum(rounds.visit_seconds)
        too_soon = done < precision.min_rounds or elapsed < precision.least_s
        if too_soon and done < precision.max_rounds:
            return None
        if within(self.ratios(), precision):
            return "precision"
        if done >= precision.max_rounds:
            return "max_rounds"
        if elapsed >= precision.budget_s:
            return "budget"
        return None

    def _share_done(self, visits: int) -> bool:
        """Whether this visit has timed a round and its share of the minimums, or of the
        limits (the last visit too: pytest-benchmark needs its rounds)."""
        precision, rounds = self.precision, self.rounds
        done, elapsed = len(rounds.baseline) - rounds.visit_starts[-1], rounds.visit_seconds[-1]
        if done == 0:
            return False
        minimums = (
            done >= math.ceil(precision.min_rounds / visits)
            and elapsed >= precision.least_s / visits
        )
        limits = done >= precision.max_rounds / visits or elapsed >= precision.budget_s / visits
        return minimums or limits

    def order(self) -> list[str]:
        """The calls of the next round: pairs in alternating order, from round to round."""
        done = len(self.rounds.baseline)
        pairs = [("baseline", "candidate"), ("candidate", "baseline")]
        return [side for j in range(self.precision.calls) for side in pairs[(done + j) % 2]]

    def setup(self) -> None:
        self.stopped = self.stop_reason()
        if self.stopped is not None:
            raise EnoughRounds(self.stopped)
        calls = self.order()
        last = len(calls) - 1 - calls[::-1].index("candidate")
        self._round = {"candidate": [], "baseline": []}
        self._after = calls[last + 1 :]
        for side in calls[:last]:
            self._time(side)

    def target(self) -> None:
        self._time("candidate")

    def teardown(self) -> None:
        for side in self._after:
            self._time(side)
        self.rounds.candidate.append(min(self._round["candidate"]))
        self.rounds.baseline.append(min(self._round["baseline"]))

    def time_rounds(self) -> None:
        """Rounds until :meth:`stop_reason` says enough."""
        try:
            while True:
                self.setup()
                self.target()
                self.teardown()
        except EnoughRounds:
            pass

    def _time(self, side: str) -> None:
        """One call timed, with the garbage collector paused as ``timeit`` does."""
        call = self.candidate if side == "candidate" else self.baseline
        call.reset()
        collecting = gc.isenabled()
        gc.disable()
        try:
            start = self.timer()
            call()
            self._round[side].append(self.timer() - start)
        finally:
            if collecting:
                gc.enable()


CLOCKS: dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_NAMES = {
    "wall": "wall time (time.perf_counter)",
    "cpu": "this process's CPU time (time.process_time): time the scheduler gives to other "
    "processes is not counted",
}


def choose_clock(name: str, threads: int, case: Case, *impls: Implementation) -> str:
    """``"cpu"`` or ``"wall"``; ``"auto"`` is CPU time where it equals the time a call
    takes on an idle machine: one torch thread, on the CPU, torch or NumPy on both sides
    (other frameworks run pools of their own, whose threads would add up)."""
    if name != "auto":
        return name
    own_thread = all(impl.framework in ("torch", "numpy") for impl in impls)
    return "cpu" if threads == 1 and case.device == "cpu" and own_thread else "wall"


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and extremes of ``values``."""
    ordered = sorted(values)
    if len(ordered) > 1:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "rounds": len(ordered),
    }


def median_interval(values: Sequence[float], confidence: float) -> tuple[float, float] | None:
    """A distribution-free ``confidence`` interval for the median: two order statistics.

    ``[x_(k), x_(n+1-k)]`` with the largest k such that P(Binomial(n, 1/2) < k) is at most
    (1 - confidence) / 2; None when ``values`` are too few for any k.
    """
    n = len(values)
    tail = (1 - confidence) / 2
    cumulative, k = 0.0, 0
    for j in range(n // 2 + 1):
        cumulative += math.exp(
            math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) - n * math.log(2)
        )
        if cumulative > tail:
            break
        k = j + 1
    if k == 0:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def within(ratios: Sequence[float], precision: Precision) -> bool:
    """Whether the median ratio's confidence interval lies within the relative half-width."""
    interval = median_interval(ratios, precision.confidence)
    return interval is not None and _inside(interval, statistics.median(ratios), precision)


def _inside(interval: tuple[float, float], median: float, precision: Precision) -> bool:
    low, high = interval
    width = precision.half_width
    return low >= median * (1 - width) and high <= median * (1 + width)


def ratio_stats(rounds: Rounds, precision: Precision, stopped: str) -> dict[str, Any]:
    """The ratios' spread, the median's confidence interval and whether it converged.

    With enough visits (six at 95%), the interval is widened to the visits' medians' own
    ``confidence`` interval (the same order statistics; of nine visits, the second-lowest
    and second-highest): rounds within a visit share the machine's moment, visits do not. A point
    whose rounds converged but whose visits disagree by more than the half-width is not
    converged (``"visits_disagree"``).
    """
    ratios, visits = rounds.ratios(), rounds.visits()
    medians = [visit["median"] for visit in visits]
    median = statistics.median(ratios)
    low, high = median_interval(ratios, precision.confidence) or (math.nan, math.nan)
    between = median_interval(medians, precision.confidence)
    if between is not None:
        low, high = min(low, between[0]), max(high, between[1])
        if stopped == "precision" and not _inside(between, median, precision):
            stopped = "visits_disagree"
    return {
        **spread(ratios),
        "ci_low": low,
        "ci_high": high,
        "confidence": precision.confidence,
        "half_width": precision.half_width,
        "visits": visits,
        "converged": stopped == "precision",
        "stopped": stopped,
    }


# -- the matrix-product limit -----------------------------------------------------------
def product_time(
    shape: tuple[int, int, int], count: int, dtype: str, device: str, repeats: int = 5
) -> float:
    """Fastest of ``repeats`` timings of ``count`` x ``torch.mm((rows, inner), (inner, cols))``.

    The fastest, not the median: a limit is what the machine can do, and a stall only ever
    makes a timing longer. Timed in CPU time on one thread on the CPU, as the calls are
    (:func:`choose_clock`).
    """
    import torch

    rows, inner, cols = shape
    kind = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator, dtype=kind).to(device)
    w = torch.randn(cols, inner, generator=generator, dtype=kind).to(device).t()
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    one_thread = torch.get_num_threads() == 1 and device == "cpu"
    clock = CLOCKS["cpu" if one_thread else "wall"]

    def once() -> float:
        start = clock()
        for _ in range(count):
            torch.mm(a, w)
        synchronize()
        return clock() - start

    once()
    return min(once() for _ in range(repeats))


LIMIT_FACTOR = 3.0
"""Matrix-product speeds further apart than this are inconsistent: a larger product is
never this much slower per FLOP than a smaller one, nor one shape this much slower now than
before. They are re-measured, and flagged when they stay so."""


@dataclass
class Limits:
    """The matrix-product speed per shape for this process, checked against itself.

    Each product is timed again at every point: a speed that disagrees by more than
    :data:`LIMIT_FACTOR` with the same shape's earlier measurement, or that falls that far
    below a smaller product's speed, is re-measured up to ``retries`` times. The limit kept
    is the fastest seen; what is still inconsistent after that is flagged.
    """

    timer: Callable[[tuple[int, int, int], int, str, str], float] = product_time
    retries: int = 2
    best: dict[tuple[Any, ...], float] = field(default_factory=dict)

    def seconds(
        self, shape: tuple[int, int, int], count: int, dtype: str, device: str, threads: int
    ) -> tuple[float, list[str]]:
        """Seconds for ``count`` products of ``shape``, and what stayed inconsistent."""
        key = (shape, count, dtype, device, threads)
        previous = self.best.get(key)
        fastest = math.inf
        for _ in range(1 + self.retries):
            fastest = min(fastest, self.timer(shape, count, dtype, device))
            if not self._inconsistent(key, fastest, previous):
                break
        flags = self._inconsistent(key, fastest, previous)
        self.best[key] = min(fastest, previous or math.inf)
        return self.best[key], flags

    def _inconsistent(
        self, key: tuple[Any, ...], seconds: float, previous: float | None
    ) -> list[str]:
        shape, count, *setting = key
        speed = _gflops(shape, count, seconds)
        found = []
        if previous is not None and not 1 / LIMIT_FACTOR <= seconds / previous <= LIMIT_FACTOR:
            found.append(
                f"torch.mm {_shape_text(shape)}: {speed:.3g} GFLOP/s, but "
                f"{_gflops(shape, count, previous):.3g} GFLOP/s when measured before"
            )
        smaller = [
            (_gflops(other, times, best), other)
            for (other, times, *rest), best in self.best.items()
            if rest == setting and math.prod(other) < math.prod(shape)
        ]
        if smaller:
            fastest, other = max(smaller)
            if speed * LIMIT_FACTOR < fastest:
                found.append(
                    f"torch.mm {_shape_text(shape)}: {speed:.3g} GFLOP/s, under 1/"
                    f"{LIMIT_FACTOR:g} of the {fastest:.3g} GFLOP/s of the smaller "
                    f"{_shape_text(other)}"
                )
        return found


def _gflops(shape: tuple[int, int, int], count: int, seconds: float) -> float:
    return 2 * math.prod(shape) * count / seconds / 1e9


def _shape_text(shape: Sequence[int]) -> str:
    rows, inner, cols = shape
    return f"({rows}x{inner})@({inner}x{cols})"


LIMITS = Limits()
"""This process's matrix-product speeds, shared by every point measured in it."""


def matmul_limit(
    case: Case, mode: str, threads: int, limits: Limits | None = None
) -> dict[str, Any]:
    """The time the case's matrix products alone take on this machine, its GFLOP/s, and
    what about those timings stayed inconsistent after re-measuring."""
    limits = limits or LIMITS
    found, flags = [], []
    total_time = 0.0
    for product in flops.products(case.config, case.steps, case.batch or 1):
        seconds, problems = limits.seconds(
            product.shape, product.count, case.dtype, case.device, threads
        )
        total_time += seconds
        flags += problems
        found.append(
            {
                "what": product.what,
                "shape": list(product.shape),
                "count": product.count,
                "gflops": product.flops / seconds / 1e9,
            }
        )
    total_time *= flops.passes(mode)
    work = flops.flops(case.config, case.steps, case.batch or 1, mode)
    return {
        "time_s": total_time,
        "gflops": work / total_time / 1e9,
        "products": found,
        "flags": flags,
    }


# -- where the calls run -----------------------------------------------------------------
def default_cpu(threads: int) -> int | None:
    """The CPU a speed run with ``threads`` torch threads is pinned to: the lowest-numbered
    one this process may use, at one thread; None (the scheduler decides) at several, or
    where the platform cannot pin."""
    if threads != 1 or not hasattr(os, "sched_getaffinity"):
        return None
    return min(os.sched_getaffinity(0))


def cpu_choice(text: str) -> int | str | None:
    """A ``--cpu`` / ``--speed-cpu`` value: a CPU number, ``"auto"``, or ``none`` (None)."""
    if text == "none":
        return None
    if text == "auto":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a CPU number, auto or none, got {text!r}")
    return int(text)


@contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the calling thread on ``cpu`` alone (None: leave it where it is), then restore.

    The scheduler otherwise moves a run between CPUs, and on a shared virtual machine they
    need not be alike: torch.nn.LSTM's forward at T=16, B=4, H=16 took 88 us on one CPU of
    this project's machine and 125 to 155 us on the other, so a run's ratios moved with
    where it happened to be.
    """
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    if cpu not in before:
        allowed = ", ".join(map(str, sorted(before)))
        raise ValueError(f"cannot pin to CPU {cpu}: this process may run on CPUs {allowed}")
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- NumPy BLAS threads -----------------------------------------------------------------
@contextmanager
def numpy_blas_threads(limit: int) -> Iterator[str]:
    """Limit NumPy's BLAS pool to ``limit`` threads; yields how it was done."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        with threadpool_limits(limits=limit, user_api="blas"):
            yield f"{limit} (threadpoolctl)"
        return
    functions = _openblas_thread_functions()
    if functions is None:
        yield "not limited (install threadpoolctl)"
        return
    get, set_ = functions
    before = get()
    set_(limit)
    try:
        yield f"{limit} (OpenBLAS)"
    finally:
        set_(before)


def _openblas_thread_functions() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    """OpenBLAS's get/set thread-count functions from the libraries this process loaded."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return None
    libraries = {
        line.split()[-1]
        for line in maps.read_text().splitlines()
        if "openblas" in line.rsplit("/", 1)[-1].lower()
    }
    for path in sorted(libraries):
        library = ctypes.CDLL(path)
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_"):
                getter = getattr(library, f"{prefix}openblas_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}openblas_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    return getter, setter
    return None


# -- results ----------------------------------------------------------------------------
@dataclass
class SpeedResult:
    """One case and mode: both implementations' timings, the ratios and the limit."""

    implementation: str
    baseline_implementation: str
    baseline_note: str | None
    cell: str
    mode: str
    steps: int
    batch: int
    input_size: int
    hidden_size: int
    num_layers: int
    dtype: str
    device: str
    threads: int
    numpy_blas_threads: str | None
    cpu: int | None
    flops: int
    clock: str
    candidate: dict[str, Any]
    baseline: dict[str, Any]
    ratio: dict[str, Any]
    limit: dict[str, Any]
    environment: dict[str, Any]
    label: str
    schema: str = SCHEMA

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: medians, the ratio with its interval, the fractions of the limit."""
        c, b, r = self.candidate, self.baseline, self.ratio
        converged = "" if r["converged"] else f", NOT converged ({r['stopped']})"
        return (
            f"{self.label} {self.mode}: {self.implementation} {c['median'] * 1e3:.3g} ms "
            f"({c['fraction_of_limit']:.0%} of the matmul limit), {self.baseline_implementation} "
            f"{b['median'] * 1e3:.3g} ms ({b['fraction_of_limit']:.0%}); ratio "
            f"{r['median']:.3f}, {r['confidence']:.0%} interval [{r['ci_low']:.3f}, "
            f"{r['ci_high']:.3f}], quartiles [{r['q1']:.2f}, {r['q3']:.2f}] over "
            f"{r['rounds']} rounds in {_plural(len(r['visits']), 'visit')}{converged}; "
            f"{self.threads} threads"
        )


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _side(interleaved: Interleaved, side: str, work: int, limit_time: float) -> dict[str, Any]:
    call = interleaved.candidate if side == "candidate" else interleaved.baseline
    stats = spread(getattr(interleaved.rounds, side))
    backend, ops = call.backend()
    build_s, first_call_s = interleaved.rounds.startup[side]
    return {
        **stats,
        "gflops": work / stats["median"] / 1e9,
        "fraction_of_limit": limit_time / stats["median"],
        "build_s": build_s,
        "first_call_s": first_call_s,
        "backend": backend,
        "top_ops": ops,
        "warnings": call.warnings,
        "noncontiguous": call.noncontiguous(),
    }


def measure(
    impl: Implementation,
    case: Case,
    mode: str,
    *,
    precision: Precision | None = None,
    warmup: int = 3,
    threads: int | None = None,
    baseline: Implementation | None = None,
    benchmark: Any = None,
    limits: Limits | None = None,
    clock: str = "auto",
    rounds: Rounds | None = None,
    visit: tuple[int, int] = (1, 1),
    cpu: int | None | str = "auto",
) -> SpeedResult | None:
    """Time ``impl`` and the baseline interleaved on ``case`` until ``precision`` is met.

    The baseline is ``torch.nn``, or the generated reference for a cell torch.nn lacks
    (:func:`baseline_for`). ``benchmark`` is pytest-benchmark's fixture: when given and
    enabled, it times the candidate's rounds (so ``--benchmark-json`` holds them) and gets
    the result in ``extra_info["rnnspec_speed"]``. ``clock`` times the calls (see
    :func:`choose_clock`). ``cpu`` is the CPU the calls run on (:func:`pinned`; ``"auto"``:
    :func:`default_cpu`). Raises :class:`Unsupported` when either cannot run the case.

    ``visit`` (this one, of how many) and ``rounds`` (the earlier visits' rounds, added to)
    time the point in several visits, with fresh instances each time (see
    :class:`Interleaved`); a visit before the last returns None.
    """
    import torch

    note = None
    if baseline is None:
        baseline, note = baseline_for(case)
    elif baseline.capabilities.unsupported(case.config, dtype=case.dtype, device=case.device):
        raise Unsupported(f"no {baseline.name} baseline for {case.config.cell}")
    precision = precision or Precision()
    previous = torch.get_num_threads()
    threads = threads or previous
    if cpu == "auto":
        where = default_cpu(threads)
    elif cpu is None or isinstance(cpu, int):
        where = cpu
    else:
        raise ValueError(f"cpu must be a CPU number, None or 'auto', got {cpu!r}")
    torch.set_num_threads(threads)
    numpy = impl.framework == "numpy"
    clock = choose_clock(clock, threads, case, impl, baseline)
    try:
        with (
            pinned(where),
            numpy_blas_threads(1) if numpy else nullcontext() as blas,
            warnings.catch_warnings(),
        ):
            interleaved = Interleaved(
                PreparedCall(impl, case, mode),
                PreparedCall(baseline, case, mode),
                precision,
                CLOCKS[clock],
                rounds=Rounds() if rounds is None else rounds,
                visit=visit,
            )
            interleaved.rounds.first_visit(interleaved)
            warnings.simplefilter("ignore")  # each PreparedCall kept its first call's warnings
            interleaved.warm_up(warmup)
            if benchmark is not None and benchmark.enabled:
                try:
                    benchmark.pedantic(
                        interleaved.target,
                        setup=interleaved.setup,
                        teardown=interleaved.teardown,
                        rounds=precision.max_rounds,
                    )
                except EnoughRounds:
                    pass
                interleaved.stopped = interleaved.stopped or interleaved.stop_reason()
            else:
                interleaved.time_rounds()
            if visit[0] < visit[1]:
                return None
            limit = matmul_limit(case, mode, threads, limits)
            settings = {
                "threads": threads,
                "numpy_blas_threads": blas,
                "cpu": where,
                "clock": CLOCK_NAMES[clock],
            }
            result = _result(impl, baseline, note, case, mode, interleaved, limit, settings)
    finally:
        torch.set_num_threads(previous)
    if benchmark is not None:
        benchmark.extra_info[RECORD_KEY] = result.as_dict()
    return result


def _result(
    impl: Implementation,
    baseline: Implementation,
    note: str | None,
    case: Case,
    mode: str,
    interleaved: Interleaved,
    limit: dict[str, Any],
    settings: dict[str, Any],
) -> SpeedResult:
    config = case.config
    work = flops.flops(config, case.steps, case.batch or 1, mode)
    stopped = interleaved.stopped or "max_rounds"
    return SpeedResult(
        implementation=impl.name,
        baseline_implementation=baseline.name,
        baseline_note=note,
        cell=config.cell,
        mode=mode,
        steps=case.steps,
        batch=case.batch or 1,
        input_size=config.input_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dtype=case.dtype,
        device=case.device,
        flops=work,
        candidate=_side(interleaved, "candidate", work, limit["time_s"]),
        baseline=_side(interleaved, "baseline", work, limit["time_s"]),
        ratio=ratio_stats(interleaved.rounds, interleaved.precision, stopped),
        limit=limit,
        environment=environment(),
        label=case.label(),
        **settings,
    )


@dataclass
class LeftOut:
    """Points the speed run did not measure, with the reason: a pytest plugin that adds
    them to ``--benchmark-json`` (pytest-benchmark's ``pytest_benchmark_update_json``)."""

    points: list[dict[str, str]] = field(default_factory=list)

    def add(self, case: Case, mode: str, reason: str) -> None:
        self.points.append(
            {"cell": case.config.cell, "mode": mode, "label": case.label(), "reason": reason}
        )

    def pytest_benchmark_update_json(self, output_json: dict[str, Any]) -> None:
        output_json[LEFT_OUT_KEY] = self.points


# -- the NumPy reference as a candidate -------------------------------------------------
class _GoldNetwork:
    def __init__(self, config: RNNConfig) -> None:
        self.config = config
        self.weights: dict[str, np.ndarray] = {}


def _load_gold(instance: _GoldNetwork, weights: Any) -> None:
    instance.weights = dict(weights)


def _call_gold(instance: _GoldNetwork, x: Any, hx: Any) -> Any:
    from reference.gold import forward

    return forward(instance.config, instance.weights, x, hx)


def numpy_reference() -> Implementation:
    """The generated NumPy reference (``reference.gold.forward``) as a candidate."""
    return Implementation(
        "numpy-reference",
        lambda config, device, dtype: _GoldNetwork(config),
        Capabilities(cells=frozenset({"*"}), packed=False),
        load_weights=_load_gold,
        call=_call_gold,
        framework="numpy",
        description="rnnspec's generated NumPy reference (reference.gold.forward)",
    )


# -- command line -----------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnspec.speed",
        description="Time an implementation against torch.nn, interleaved; print the ratios.",
    )
    parser.add_argument("--impl", default="reference", help="entry point or module:attribute")
    parser.add_argument("--cell", action="append", help="cell kind (repeatable; default: all)")
    parser.add_argument("--steps", "-T", type=int, default=100)
    parser.add_argument("--batch", "-B", type=int, default=32)
    parser.add_argument("--hidden", "-H", type=int, default=256, help="hidden = input size")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", choices=MODES, action="append")
    parser.add_argument(
        "--half-width",
        type=float,
        default=0.05,
        help="stop when the ratio's 95%% interval is within this relative half-width",
    )
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of rounds a point")
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="seconds of rounds a point takes at least"
    )
    parser.add_argument("--calls", type=int, default=3, help="calls of each side a round")
    parser.add_argument("--clock", choices=("auto", *CLOCKS), default="auto")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument(
        "--visits", type=int, default=9, help="visits per point, spread over the run"
    )
    parser.add_argument(
        "--cpu",
        type=cpu_choice,
        default="auto",
        help="CPU the calls run on: a number, auto (the first one, at one thread) or none",
    )
    args = parser.parse_args(argv)
    if args.visits < 1:
        parser.error(f"--visits must be at least 1, got {args.visits}")
    impl = numpy_reference() if args.impl == "numpy-reference" else registry.load(args.impl)
    precision = Precision(
        calls=args.calls,
        half_width=args.half_width,
        min_s=args.min_seconds,
        budget_s=args.budget,
    )
    point = (args.steps, args.batch, args.hidden)
    points = [
        (point_case(cell, point, args.dtype, args.device), mode)
        for cell in args.cell or ["elman", "gru", "lstm"]
        for mode in args.mode or ["forward"]
    ]
    skipped: dict[tuple[str, str], str] = {}
    rounds = {(case.id(), mode): Rounds() for case, mode in points}
    for visit in range(1, args.visits + 1):
        for case, mode in points:
            if (case.id(), mode) in skipped:
                continue
            try:
                result = measure(
                    impl,
                    case,
                    mode,
                    precision=precision,
                    warmup=args.warmup,
                    threads=args.threads,
                    clock=args.clock,
                    rounds=rounds[case.id(), mode],
                    visit=(visit, args.visits),
                    cpu=args.cpu,
                )
            except Unsupported as reason:
                skipped[case.id(), mode] = f"{case.label()} {mode}: skipped, {reason}"
                print(skipped[case.id(), mode])
                continue
            if result is not None:
                print(result.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
