"""Speed against torch.nn, interleaved (pytest-benchmark; run with ``-m speed``).

``--speed-sweep small`` (default) is a quick sweep for CI, ``--speed-sweep full`` the real
measurement; ``--benchmark-json FILE`` keeps everything for ``rnnspec report FILE``.
Every declared cell is swept (a cell torch.nn lacks against the generated reference); a
cell the candidate does not declare gets one point, skipped with the reason and listed in
the JSON. Nothing here fails on wall-clock times: a check fails only when the candidate
raises.
"""

import pytest
import torch

from conformance.plugin import IMPLEMENTATION_KEY
from rnnspec import spec, speed
from rnnspec.harness import Unsupported

pytestmark = pytest.mark.speed
LEFT_OUT_PLUGIN = "rnnspec-speed-left-out"


def pytest_generate_tests(metafunc):
    impl = metafunc.config.stash.get(IMPLEMENTATION_KEY, None)
    if "case" not in metafunc.fixturenames or impl is None:  # no --impl: the plugin says so
        return
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
    """The sweep, the thread count (``--torch-threads``) and where left-out points go."""
    left_out = pytestconfig.pluginmanager.get_plugin(LEFT_OUT_PLUGIN)
    if left_out is None:
        left_out = speed.LeftOut()
        pytestconfig.pluginmanager.register(left_out, LEFT_OUT_PLUGIN)
    sweep = speed.SWEEPS[pytestconfig.getoption("speed_sweep")]
    return sweep, pytestconfig.getoption("torch_threads"), left_out


@pytest.mark.parametrize("mode", speed.MODES)
def test_speed(implementation, case, mode, benchmark, speed_settings):
    sweep, threads, left_out = speed_settings
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
        )
    except Unsupported as reason:
        left_out.add(case, mode, str(reason))
        raise
