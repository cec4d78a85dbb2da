"""Speed against torch.nn, interleaved (pytest-benchmark; run with ``-m speed``).

``--speed-sweep small`` (default) is a quick sweep for CI, ``--speed-sweep full`` the real
measurement; ``--benchmark-json FILE`` keeps everything for ``rnnspec report FILE``.
Every declared cell is swept (a cell torch.nn lacks against the generated reference); a
cell the candidate does not declare gets one point, skipped with the reason and listed in
the JSON. Each point is timed in several visits (``--speed-visits``): visit 1 of every
point, then visit 2 of every point, and so on; the last visit records the point's result.
Nothing here fails on wall-clock times: a check fails only when the candidate raises.
"""

from collections import defaultdict

import pytest
import torch

from conformance.plugin import IMPLEMENTATION_KEY, SPEED_CPU_KEY
from rnnspec import spec, speed
from rnnspec.harness import Unsupported

pytestmark = pytest.mark.speed
LEFT_OUT_PLUGIN = "rnnspec-speed-left-out"


def visits(config: pytest.Config) -> int:
    return config.getoption("speed_visits") or speed.SWEEPS[config.getoption("speed_sweep")].visits


def pytest_generate_tests(metafunc):
    impl = metafunc.config.stash.get(IMPLEMENTATION_KEY, None)
    if "case" not in metafunc.fixturenames or impl is None:  # no --impl: the plugin says so
        return
    count = visits(metafunc.config)
    numbers = range(1, count + 1)  # parametrized first: the outermost loop of the run
    metafunc.parametrize("visit", numbers, ids=[f"visit{n}of{count}" for n in numbers])
    cells = spec.cell_names()
    declared = [cell for cell in cells if impl.capabilities.declares(cell)]
    undeclared = [cell for cell in cells if cell not in declared]
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    sweep = metafunc.config.getoption("speed_sweep")
    base = speed.SWEEPS[sweep].base
    found = []
    for device in devices:
        found += speed.cases(declared, sweep, device=device)
        found += [speed.point_case(cell, base, device=device) for cell in undeclared]
    metafunc.parametrize("case", found, ids=[case.id() for case in found])


@pytest.fixture(scope="session")
def speed_settings(pytestconfig):
    """The sweep, the visits, the thread count (``--torch-threads``), the CPU
    (``--speed-cpu``), where left-out points go and each point's rounds so far."""
    left_out = pytestconfig.pluginmanager.get_plugin(LEFT_OUT_PLUGIN)
    if left_out is None:
        left_out = speed.LeftOut()
        pytestconfig.pluginmanager.register(left_out, LEFT_OUT_PLUGIN)
    sweep = speed.SWEEPS[pytestconfig.getoption("speed_sweep")]
    threads, cpu = pytestconfig.getoption("torch_threads"), pytestconfig.stash[SPEED_CPU_KEY]
    return sweep, visits(pytestconfig), threads, cpu, left_out, defaultdict(speed.Rounds)


@pytest.mark.parametrize("mode", speed.MODES)
def test_speed(implementation, case, mode, visit, request, speed_settings):
    sweep, count, threads, cpu, left_out, rounds = speed_settings
    last = visit == count
    benchmark = None
    if last:  # pytest-benchmark's own statistics: the last visit's rounds
        benchmark = request.getfixturevalue("benchmark")
        request.node.funcargs["benchmark"] = benchmark  # where pytest-benchmark sees a skip
        benchmark.group = f"{case.config.cell} {mode} {case.dtype} {case.device}"
    try:
        speed.measure(
            implementation,
            case,
            mode,
            precision=sweep.precision,
            warmup=sweep.warmup,
            threads=threads,
            benchmark=benchmark,
            rounds=rounds[case.id(), mode],
            visit=(visit, count),
            cpu=cpu,
        )
    except Unsupported as reason:
        if last:
            left_out.add(case, mode, str(reason))
        raise
