"""The example package as a user installs it: ``scratch-lstm`` conforms, its buggy twin fails.

CI installs it (``pip install -e examples/scratch-lstm``); without it these tests skip. The
suite runs in a subprocess, found through the entry points like any third-party candidate.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

import conformance
from rnnspec import registry
from rnnspec.config import RNNConfig


def _installed() -> bool:
    try:
        distribution("scratch-lstm")
    except PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed(),
    reason="the example is not installed: pip install -e examples/scratch-lstm",
)

SUITE = str(Path(conformance.__file__).resolve().parent)


def run_suite(tmp_path: Path, impl: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        SUITE,
        "--impl",
        impl,
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    return subprocess.run(
        [*command, *args], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600
    )


def summary_rows(output: str) -> dict[str, tuple[int, int, int]]:
    """Category -> (passed, failed, skipped) from the rnnspec summary table."""
    section = output[output.index("rnnspec conformance:") :]
    rows = re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)$", section, re.MULTILINE)
    return {name: (int(p), int(f), int(s)) for name, p, f, s in rows}


def test_both_entry_points_are_registered() -> None:
    assert {"scratch-lstm", "scratch-lstm-buggy"} <= set(registry.registered_names())
    capabilities = registry.load("scratch-lstm").capabilities
    assert capabilities.cells == {"lstm", "gru", "gru:reset_before"}
    projected = RNNConfig(cell="lstm", input_size=5, hidden_size=7, proj_size=3)
    assert capabilities.unsupported(projected) == "proj_size not supported"


def test_scratch_lstm_passes_every_category(tmp_path: Path) -> None:
    """Every category on stacked bidirectional networks (CI runs the whole suite on it)."""
    result = run_suite(tmp_path, "scratch-lstm", "-k", "layers2 and bidirectional")
    output = result.stdout
    assert result.returncode == 0, output[-4000:]
    assert "= rnnspec conformance: scratch-lstm =" in output
    rows = summary_rows(output)
    assert rows["parity"][0] > 0
    assert all(failed == 0 for _, failed, _ in rows.values()), rows
    assert "cell lstm:peephole not supported (supports: gru, gru:reset_before, lstm)" in output
    assert "proj_size not supported" in output


def test_buggy_twin_fails_with_a_message_naming_the_planted_bug(tmp_path: Path) -> None:
    result = run_suite(
        tmp_path,
        "scratch-lstm-buggy",
        "-m",
        "parity",
        "-k",
        "lstm- and layers2 and bidirectional and batch_first and not no-bias and not hxNone "
        "and float64 and not square and not large",
    )
    output = result.stdout
    assert result.returncode == 1, output[-4000:]
    assert summary_rows(output)["parity"] == (0, 1, 0)
    assert "failures by kind: mismatch 1" in output
    config = "[lstm I=5 H=7 layers=2 bidirectional batch_first T=6 B=3 dtype=float64]"
    message = re.search(
        r"^(\w+)\[(\d+(?:, \d+)*)\]=(\S+), but should be (\S+) "
        r"\(atol=(\S+), rtol=(\S+); max abs error (\S+), \d+ of \d+ elements outside\) (\[.*\])",
        output,
        re.MULTILINE,
    )
    assert message, output[-4000:]
    what, _where, got, expected, atol, _rtol, error, shown_config = message.groups()
    assert what in ("output", "h_n", "c_n")
    assert float(error) > 1e-3 > float(atol) > 0
    assert abs(float(got) - float(expected)) > float(atol)
    assert shown_config == config
    verdict = re.search(r"^-+ rnnspec diagnosis -+\n(.*)$", output, re.MULTILINE)
    assert verdict, output[-4000:]
    assert re.search(
        r"matches \S+ to \S+: your LSTM reads its stacked gate blocks in the order "
        r"\(i, g, f, o\), not \(i, f, g, o\); fix: ",
        verdict.group(1),
    ), verdict.group(1)
    assert "lstm: gate_permutation:i,g,f,o (1x)" in output
    assert "implementation = Implementation(" not in output and "case = Case(" not in output
