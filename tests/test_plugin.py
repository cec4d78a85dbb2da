"""The conformance plugin end to end: options, usage errors, summary, reports, xdist, ``run()``.

Runs are restricted to a handful of parity cases (``-m parity -k ...``) to stay fast; the
ones that must leave this process (xdist, ``--pyargs`` from elsewhere, an installed broken
entry point) run in a subprocess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import conformance
from rnnspec import listing
from rnnspec.protocol import Implementation
from rnnspec.registry import Registered

pytest_plugins = ["pytester"]

SUITE = str(Path(conformance.__file__).resolve().parent)
# One float64 case per cell torch.nn declares (two for the LSTM: with and without proj_size), and
# the one representative case of each cell it does not declare: torch.nn runs 5, skips 3.
FEW = (
    "-m",
    "parity",
    "-k",
    "((layers2 and bidirectional and batch_first and not no-bias and not hxNone and float64) "
    "or peephole or coupled or reset_before) and not square and not large",
)
QUIET = ("-p", "no:cacheprovider")

FAULTY = """
import torch
from dataclasses import replace
from rnnspec.protocol import Implementation


def call(module, x, hx):
    output, state = module(x, hx)
    if module.bidirectional and module.num_layers == 2:
        raise RuntimeError("planted failure")
    if module.bidirectional:
        return [output, state]
    if module.num_layers == 2:
        return output * float("nan"), state
    return output, state


faulty = replace(Implementation.from_module(torch.nn.LSTM, name="faulty", cells={"lstm"}), call=call)
plain = Implementation.from_module(torch.nn.LSTM, name="plain-lstm", cells={"lstm"})
not_an_implementation = 42
"""
# LSTM cases with bias, time-major: 2 layers x 2 directions x (no proj, proj) = 8.
FAULTY_CASES = (
    "-m",
    "parity",
    "-k",
    "lstm- and not no-bias and not batch_first and not hxNone and float64 and not square "
    "and not large",
)


def table_row(output: str, category: str) -> tuple[int, int, int]:
    """(passed, failed, skipped) from the summary table's row for ``category``."""
    match = re.search(rf"^{category}\s+(\d+)\s+(\d+)\s+(\d+)$", output, re.MULTILINE)
    assert match, f"no '{category}' row in the rnnspec summary:\n{output}"
    passed, failed, skipped = (int(group) for group in match.groups())
    return passed, failed, skipped


def outcomes(result: pytest.RunResult) -> tuple[int, int, int]:
    counts = result.parseoutcomes()
    return counts.get("passed", 0), counts.get("failed", 0), counts.get("skipped", 0)


def test_summary_shows_categories_and_skip_reasons(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(SUITE, "--impl", "torch", *FEW, *QUIET)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*= rnnspec conformance: torch =*",
            "category*passed*failed*skipped",
            "parity*",
            "total*",
            "skipped, by reason:",
            "*cell lstm:peephole not supported (supports: elman, elman:relu, gru, lstm)",
        ]
    )
    output = result.stdout.str()
    assert table_row(output, "parity") == outcomes(result)
    assert outcomes(result) == (5, 0, 3)


def test_no_impl_is_a_usage_error_listing_registered_names(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(SUITE, *FEW, *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*the conformance suite needs --impl NAME; registered implementations: *reference*torch*"]
    )


def test_no_impl_is_one_line_for_the_whole_suite(pytester: pytest.Pytester) -> None:
    """Speed's module generates its own cases: without --impl it collects nothing either."""
    result = pytester.runpytest(SUITE, *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR collecting" not in result.stdout.str() + result.stderr.str()


def test_unknown_impl_is_a_usage_error_listing_registered_names(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest(SUITE, "--impl", "nonesuch", *FEW, *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--impl: nonesuch: unknown implementation; registered: *reference*torch*"]
    )


def test_module_attribute_runs_an_unregistered_candidate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(candidates=FAULTY)
    pytester.syspathinsert()
    result = pytester.runpytest(SUITE, "--impl", "candidates:plain", *FAULTY_CASES, *QUIET)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*= rnnspec conformance: plain-lstm =*"])
    assert outcomes(result) == (8, 0, 0)


def test_module_attribute_of_the_wrong_type_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(candidates=FAULTY)
    pytester.syspathinsert()
    result = pytester.runpytest(SUITE, "--impl", "candidates:not_an_implementation", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*candidates:not_an_implementation: resolves to int, expected *Implementation*"]
    )


def test_candidate_faults_are_reported_by_category_and_the_run_goes_on(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(candidates=FAULTY)
    pytester.syspathinsert()
    result = pytester.runpytest(SUITE, "--impl", "candidates:faulty", *FAULTY_CASES, *QUIET)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(result) == (2, 6, 0)
    output = result.stdout.str()
    assert table_row(output, "parity") == (2, 6, 0)
    kinds = re.search(r"^failures by kind: (.*)$", output, re.MULTILINE)
    assert kinds, output
    assert sorted(kinds.group(1).split(", ")) == ["non-finite 2", "raised 2", "wrong-type 2"]
    result.stdout.fnmatch_lines_random(
        [
            "*faulty: forward raised RuntimeError: planted failure [[]lstm I=5 H=7 layers=2 *",
            "*forward returned list, but should return a tuple (output, state) [[]lstm *",
            "*output[[]*is not finite, but should be * [[]lstm I=5 H=7 layers=2 *",
        ]
    )


def test_conformance_report_writes_json_and_markdown(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        SUITE, "--impl", "torch", *FEW, *QUIET, "--conformance-report", "out"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["conformance report written to *out.json"])
    data = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    assert data["implementation"] == "torch"
    assert data["summary"] == {"parity": {"passed": 5, "skipped": 3}}
    assert {"python", "numpy", "torch", "threads"} <= set(data["environment"])
    assert data["capabilities"]["cells"] == ["elman", "elman:relu", "gru", "lstm"]
    assert {"parity:output", "parity:h_n", "parity:c_n"} <= set(data["worst_errors"])
    for worst in data["worst_errors"].values():
        assert 0 <= worst["max_abs"] <= worst["atol"]
    assert len(data["results"]) == 8
    markdown = (pytester.path / "out.md").read_text(encoding="utf-8")
    assert markdown.startswith("# rnnspec conformance report: torch\n")
    for expected in ("Environment: python ", "| parity | 5 | 0 | 3 |", "## Largest error seen"):
        assert expected in markdown
    assert "cell lstm:peephole not supported" in markdown


def test_xdist_merges_worker_results(pytester: pytest.Pytester) -> None:
    serial = pytester.runpytest(SUITE, "--impl", "torch", *FEW, *QUIET, "--conformance-report", "a")
    parallel = pytester.runpytest_subprocess(
        SUITE, "--impl", "torch", *FEW, *QUIET, "-n", "2", "--conformance-report", "b"
    )
    assert serial.ret == parallel.ret == pytest.ExitCode.OK
    assert "2 workers" in parallel.stdout.str()
    assert table_row(parallel.stdout.str(), "parity") == table_row(serial.stdout.str(), "parity")
    a, b = (json.loads((pytester.path / f"{n}.json").read_text(encoding="utf-8")) for n in "ab")
    assert a["summary"] == b["summary"]
    assert a["skip_reasons"] == b["skip_reasons"]
    assert a["worst_errors"].keys() == b["worst_errors"].keys()
    assert sorted(r["nodeid"] for r in a["results"]) == sorted(r["nodeid"] for r in b["results"])


def test_pyargs_from_an_unrelated_directory(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--pyargs", "conformance", "--impl", "torch", *FEW)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"rootdir: {pytester.path}*", "*= rnnspec conformance: torch =*"])
    assert outcomes(result) == (5, 0, 3)


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    """A directory holding an installed distribution whose entry point cannot be imported."""
    info = tmp_path / "broken_rnn-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-rnn\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[rnnspec.implementations]\nbroken = no_such_module_xyz:implementation\n"
    )
    return tmp_path


def test_broken_entry_point_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, broken_site: Path
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(broken_site))
    result = pytester.runpytest_subprocess(SUITE, "--impl", "broken", *FEW)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--impl: broken: entry point 'no_such_module_xyz:implementation' "
            "failed to load: ModuleNotFoundError: No module named 'no_such_module_xyz'"
        ]
    )


def test_list_shows_broken_entry_points_and_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken_site: Path
) -> None:
    monkeypatch.syspath_prepend(str(broken_site))
    from rnnspec.cli import main

    assert main(["list"]) == 0
    output = capsys.readouterr().out
    assert "1 BROKEN" in output.splitlines()[0]
    broken = output.index("broken  (no_such_module_xyz:implementation)\n")
    assert output[broken:].splitlines()[1] == (
        "  BROKEN     ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    torch_block = output[output.index("torch  (rnnspec.implementations:torch_nn)") :].splitlines()
    assert "  cells      elman, elman:relu, gru, lstm" in torch_block
    assert main(["list", "--strict"]) == 1


def test_list_describes_capabilities() -> None:
    text = listing.render(
        [
            Registered(
                "demo",
                "demo.module:impl",
                Implementation.from_module(
                    object, name="demo", cells={"gru"}, packed=False, dtypes=frozenset({"float32"})
                ),
                None,
            )
        ]
    )
    assert text.splitlines() == [
        "1 implementation(s) registered under rnnspec.implementations",
        "",
        "demo  (demo.module:impl)",
        "  about      -",
        "  framework  torch",
        "  cells      gru",
        "  layers     any",
        "  dtypes     float32",
        "  computes   in the input's dtype",
        "  devices    cpu, cuda, meta",
        "  supports   unidirectional, bidirectional, bias=False, time-major, batch_first, "
        "proj_size, batched, unbatched, h0, dropout, gradients",
        "  lacks      packed",
    ]


def test_run_takes_a_name_or_an_implementation_object() -> None:
    assert conformance.run("torch", *FEW, "-q") == pytest.ExitCode.OK
    gru = Implementation.from_module(torch.nn.GRU, name="torch-gru", cells={"gru"})
    assert conformance.run(gru, *FEW, "-q") == pytest.ExitCode.OK
    assert conformance.run("nonesuch", *FEW, "-q") == pytest.ExitCode.USAGE_ERROR


UNRELATED = {
    "conftest": """
import sys


def pytest_configure(config):
    for name in ("speed", "device", "dtype"):
        config.addinivalue_line("markers", f"{name}: this project's own marker")


def pytest_sessionfinish(session):
    modules = ("torch", "rnnspec.harness", "rnnspec.results", "rnnspec.spec")
    heavy = sorted(name for name in modules if name in sys.modules)
    print(f"\\nheavy modules: {heavy}")
""",
    "test_theirs": """
import pytest


@pytest.mark.speed
def test_fast_enough():
    pass


@pytest.mark.device
def test_on_device():
    pass


@pytest.mark.dtype
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_dtype(dtype):
    pass


def test_plain():
    pass
""",
}


def test_the_plugin_changes_nothing_in_an_unrelated_project(pytester: pytest.Pytester) -> None:
    """Installed rnnspec's plugin loads into every pytest run: without --impl it deselects
    nothing, counts nothing, and imports none of rnnspec's heavy modules."""
    pytester.makepyfile(**UNRELATED)
    with_plugin = pytester.runpytest_subprocess("-s", "-m", "speed or device or dtype or not speed")
    without = pytester.runpytest_subprocess("-s", "-p", "no:rnnspec")
    for result in (with_plugin, without):
        assert result.ret == pytest.ExitCode.OK
        assert outcomes(result) == (5, 0, 0)
    shown = re.sub(r"^plugins: .*$", "", with_plugin.stdout.str(), flags=re.M)  # lists it
    assert "rnnspec" not in shown
    assert "deselected" not in with_plugin.stdout.str()
    with_plugin.stdout.fnmatch_lines(["heavy modules: []"])
    plain = pytester.runpytest_subprocess("-s")
    assert outcomes(plain) == (5, 0, 0) and "deselected" not in plain.stdout.str()
