"""Speed against torch.nn, interleaved (pytest-benchmark; run with ``-m speed``).

``--speed-sweep small`` (default) is a quick sweep for CI, ``--speed-sweep full`` the real
measurement; ``--benchmark-json FILE`` keeps everything for ``rnnspec report FILE``.
Nothing here fails on wall-clock times: a check fails only when the candidate raises.
"""

import pytest
import torch

from rnnspec import spec, speed

pytestmark = pytest.mark.speed


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    cells = [cell.name for loaded in spec.all_specs().values() for cell in loaded.cells.values()]
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    sweep = metafunc.config.getoption("speed_sweep")
    found = [case for device in devices for case in speed.cases(cells, sweep, device=device)]
    metafunc.parametrize("case", found, ids=[case.id() for case in found])


@pytest.fixture(scope="session")
def speed_settings(pytestconfig):
    """The sweep's rounds and the thread count, pinned for the whole session."""
    return speed.SWEEPS[pytestconfig.getoption("speed_sweep")], torch.get_num_threads()


@pytest.mark.parametrize("mode", speed.MODES)
def test_speed(implementation, case, mode, benchmark, speed_settings):
    sweep, threads = speed_settings
    benchmark.group = f"{case.config.cell} {mode} {case.dtype} {case.device}"
    speed.measure(
        implementation,
        case,
        mode,
        rounds=sweep.rounds,
        warmup=sweep.warmup,
        threads=threads,
        benchmark=benchmark,
    )
