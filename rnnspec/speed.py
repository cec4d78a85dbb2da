"""Speed: a candidate and PyTorch's own kernel timed on the same configs, interleaved.

Each round times the candidate and the baseline (``torch.nn``) back to back, in alternating
order, so that drifts of the machine (other processes, clock, caches) hit both alike; the
report gives each one's median and spread and the per-round ratio candidate/baseline.
The thread count is fixed and recorded; NumPy candidates run with one BLAS thread (an
idle OpenBLAS pool spinning after a product halves torch's speed, FAILURE_MODES 31).
FLOPs come from the spec (:mod:`rnnspec.flops`); the machine's matrix-product speed at
the same shapes (``torch.mm``) is the limit each implementation is measured against.

Usable without pytest: :func:`measure` returns a :class:`SpeedResult`;
``python -m rnnspec.speed --impl reference --cell lstm`` prints one.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec import builtins, flops, registry
from rnnspec.cases import Case
from rnnspec.config import RNNConfig
from rnnspec.harness import Candidate, Unsupported, make_inputs, no_grad, require
from rnnspec.protocol import Capabilities, Implementation
from rnnspec.results import environment

MODES = ("forward", "forward_backward")
SCHEMA = "rnnspec-speed/1"
RECORD_KEY = "rnnspec_speed"
"""The key of a :class:`SpeedResult` in a pytest-benchmark entry's ``extra_info``."""


@dataclass(frozen=True)
class Sweep:
    """A base point (T, B, H) and the values each axis takes while the others stay put."""

    base: tuple[int, int, int]
    steps: tuple[int, ...]
    batches: tuple[int, ...]
    hiddens: tuple[int, ...]
    rounds: int
    warmup: int

    def points(self) -> list[tuple[int, int, int]]:
        steps, batch, hidden = self.base
        found = [self.base]
        found += [(t, batch, hidden) for t in self.steps]
        found += [(steps, b, hidden) for b in self.batches]
        found += [(steps, batch, h) for h in self.hiddens]
        return list(dict.fromkeys(found))


SWEEPS = {
    "small": Sweep((8, 4, 16), (4, 16), (1, 16), (8, 32), rounds=5, warmup=1),
    "full": Sweep(
        (100, 32, 256), (25, 50, 200, 400), (1, 8, 128), (64, 128, 512), rounds=20, warmup=3
    ),
}


def cases(
    cells: Iterable[str], sweep: str = "small", dtype: str = "float32", device: str = "cpu"
) -> list[Case]:
    """The sweep's points for every base cell (variants share their kind's kernels)."""
    points = SWEEPS[sweep].points()
    return [
        point_case(cell, point, dtype, device)
        for cell in cells
        if ":" not in cell
        for point in points
    ]


def point_case(
    cell: str, point: tuple[int, int, int], dtype: str = "float32", device: str = "cpu"
) -> Case:
    """The case timed at ``point`` (T, B, H): input size H, no given state."""
    steps, batch, hidden = point
    config = RNNConfig(cell=cell, input_size=hidden, hidden_size=hidden)
    return Case(config, steps, batch, dtype, device, given_state=False)


# -- what runs --------------------------------------------------------------------------
class Run:
    """One implementation built for a case; calling it runs ``mode`` once, synchronized."""

    def __init__(self, impl: Implementation, case: Case, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        require(impl, case, gradients=mode == "forward_backward")
        self.impl, self.case, self.mode = impl, case, mode
        self.candidate = Candidate(impl, case, make_inputs(case))
        self.torch = self.candidate.torch
        self.x, self.hx = self.candidate.prepare()
        self.grad_output: Any = None
        with warnings.catch_warnings(record=True) as caught, no_grad(self.candidate):
            warnings.simplefilter("always")
            outputs = self.candidate.run(self.x, self.hx)
        self.warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        if mode == "forward_backward":
            import torch

            generator = torch.Generator().manual_seed(case.seed)
            grad = torch.randn(outputs.output.shape, generator=generator, dtype=torch.float64)
            self.grad_output = grad.to(self.candidate.device, self.candidate.dtype)
        self.step = self._step()

    def __call__(self) -> None:
        self.step()

    def _step(self) -> Callable[[], None]:
        """The timed call, with framework, mode and device settled here, outside the timing."""
        call = functools.partial(self.impl.call, self.candidate.instance, self.x, self.hx)
        if not self.torch:
            return call
        import torch

        device, grad_output = self.candidate.device, self.grad_output
        cuda = device.type == "cuda"
        if self.mode == "forward":

            def forward() -> None:
                with torch.no_grad():
                    call()
                if cuda:
                    torch.cuda.synchronize(device)

            return forward

        def forward_backward() -> None:
            torch.autograd.backward(call()[0], grad_output)
            if cuda:
                torch.cuda.synchronize(device)

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
        if not self.torch:
            return "NumPy", []
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
def _timed(run: Run) -> float:
    """Seconds one call takes, with the garbage collector paused as ``timeit`` does."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    finally:
        if collecting:
            gc.enable()


@dataclass
class Interleaved:
    """Rounds of candidate and baseline, back to back, alternating which goes first.

    The pieces fit ``benchmark.pedantic(target, setup=, teardown=)``: setup and teardown
    time the baseline outside pytest-benchmark's timed region, target times the candidate.
    """

    candidate: Run
    baseline: Run
    candidate_times: list[float] = field(default_factory=list)
    baseline_times: list[float] = field(default_factory=list)

    def warm_up(self, rounds: int) -> None:
        for _ in range(rounds):
            self.baseline.reset()
            self.candidate.reset()
            self.candidate()
            self.baseline()

    def setup(self) -> None:
        self.candidate.reset()
        self.baseline.reset()
        if len(self.candidate_times) % 2 == 0:
            self.baseline_times.append(_timed(self.baseline))

    def target(self) -> None:
        self.candidate_times.append(_timed(self.candidate))

    def teardown(self) -> None:
        if len(self.candidate_times) % 2 == 0:
            self.baseline_times.append(_timed(self.baseline))

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            self.setup()
            self.target()
            self.teardown()


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


# -- the matrix-product limit -----------------------------------------------------------
_LIMIT_CACHE: dict[tuple[Any, ...], float] = {}


def product_time(
    shape: tuple[int, int, int], count: int, dtype: str, device: str, repeats: int = 5
) -> float:
    """Median seconds for ``count`` x ``torch.mm((rows, inner), (cols, inner).T)``."""
    import torch

    key = (shape, count, dtype, device, torch.get_num_threads())
    if key in _LIMIT_CACHE:
        return _LIMIT_CACHE[key]
    rows, inner, cols = shape
    kind = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=generator, dtype=kind).to(device)
    w = torch.randn(cols, inner, generator=generator, dtype=kind).to(device).t()
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def once() -> float:
        start = time.perf_counter()
        for _ in range(count):
            torch.mm(a, w)
        synchronize()
        return time.perf_counter() - start

    once()
    _LIMIT_CACHE[key] = statistics.median(once() for _ in range(repeats))
    return _LIMIT_CACHE[key]


def matmul_limit(case: Case, mode: str) -> dict[str, Any]:
    """The time the case's matrix products alone take on this machine, and its GFLOP/s."""
    found = []
    total_time = 0.0
    for product in flops.products(case.config, case.steps, case.batch or 1):
        seconds = product_time(product.shape, product.count, case.dtype, case.device)
        total_time += seconds
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
    return {"time_s": total_time, "gflops": work / total_time / 1e9, "products": found}


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
    flops: int
    candidate: dict[str, Any]
    baseline: dict[str, Any]
    ratio: dict[str, float]
    limit: dict[str, Any]
    environment: dict[str, Any]
    label: str
    schema: str = SCHEMA

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: medians, the ratio with its quartiles, the fractions of the limit."""
        c, b, r = self.candidate, self.baseline, self.ratio
        return (
            f"{self.label} {self.mode}: {self.implementation} {c['median'] * 1e3:.3g} ms "
            f"({c['fraction_of_limit']:.0%} of the matmul limit), {self.baseline_implementation} "
            f"{b['median'] * 1e3:.3g} ms ({b['fraction_of_limit']:.0%}); ratio "
            f"{r['median']:.2f} [{r['q1']:.2f}, {r['q3']:.2f}] over {r['rounds']} rounds "
            f"(fastest/fastest {c['min'] / b['min']:.2f}), {self.threads} threads"
        )


def _side(run: Run, times: list[float], work: int, limit_time: float) -> dict[str, Any]:
    stats = spread(times)
    backend, ops = run.backend()
    return {
        **stats,
        "gflops": work / stats["median"] / 1e9,
        "fraction_of_limit": limit_time / stats["median"],
        "backend": backend,
        "top_ops": ops,
        "warnings": run.warnings,
        "noncontiguous": run.noncontiguous(),
    }


def measure(
    impl: Implementation,
    case: Case,
    mode: str,
    *,
    rounds: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    baseline: Implementation | None = None,
    benchmark: Any = None,
) -> SpeedResult:
    """Time ``impl`` and the baseline (``torch.nn``) interleaved on ``case``.

    ``benchmark`` is pytest-benchmark's fixture: when given, it drives the rounds (so
    ``--benchmark-json`` holds the candidate's timings) and gets the result in
    ``extra_info["rnnspec_speed"]``. Raises :class:`Unsupported` when either cannot run it.
    """
    import torch

    baseline = baseline or builtins.torch_nn()
    if baseline.capabilities.unsupported(case.config, dtype=case.dtype, device=case.device):
        raise Unsupported(f"no {baseline.name} baseline for {case.config.cell}")
    previous = torch.get_num_threads()
    threads = threads or previous
    torch.set_num_threads(threads)
    numpy = impl.framework == "numpy"
    try:
        with numpy_blas_threads(1) if numpy else nullcontext() as blas, warnings.catch_warnings():
            interleaved = Interleaved(Run(impl, case, mode), Run(baseline, case, mode))
            warnings.simplefilter("ignore")  # each Run kept its first call's warnings
            interleaved.warm_up(warmup)
            if benchmark is None:
                interleaved.run(rounds)
            else:
                benchmark.pedantic(
                    interleaved.target,
                    setup=interleaved.setup,
                    teardown=interleaved.teardown,
                    rounds=rounds,
                )
            result = _result(impl, baseline, case, mode, interleaved, threads, blas)
    finally:
        torch.set_num_threads(previous)
    if benchmark is not None:
        benchmark.extra_info[RECORD_KEY] = result.as_dict()
    return result


def _result(
    impl: Implementation,
    baseline: Implementation,
    case: Case,
    mode: str,
    interleaved: Interleaved,
    threads: int,
    blas: str | None,
) -> SpeedResult:
    config = case.config
    pairs = list(zip(interleaved.candidate_times, interleaved.baseline_times, strict=False))
    work = flops.flops(config, case.steps, case.batch or 1, mode)
    limit = matmul_limit(case, mode)
    return SpeedResult(
        implementation=impl.name,
        baseline_implementation=baseline.name,
        cell=config.cell,
        mode=mode,
        steps=case.steps,
        batch=case.batch or 1,
        input_size=config.input_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        dtype=case.dtype,
        device=case.device,
        threads=threads,
        numpy_blas_threads=blas,
        flops=work,
        candidate=_side(interleaved.candidate, [c for c, _ in pairs], work, limit["time_s"]),
        baseline=_side(interleaved.baseline, [b for _, b in pairs], work, limit["time_s"]),
        ratio=spread([c / b for c, b in pairs]),
        limit=limit,
        environment=environment(),
        label=case.label(),
    )


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
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    impl = numpy_reference() if args.impl == "numpy-reference" else registry.load(args.impl)
    point = (args.steps, args.batch, args.hidden)
    for cell in args.cell or ["elman", "gru", "lstm"]:
        case = point_case(cell, point, args.dtype, args.device)
        for mode in args.mode or ["forward"]:
            try:
                result = measure(
                    impl,
                    case,
                    mode,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    threads=args.threads,
                )
            except Unsupported as reason:
                print(f"{case.label()} {mode}: skipped, {reason}")
                continue
            print(result.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
