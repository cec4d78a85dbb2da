"""Misbehaving candidates and clumsy invocations: the run goes on and its verdict holds.

Each candidate below is PyTorch's own Elman module, correct but for one planted misbehaviour
on the first of four parity cases (so a check that lets it spill over shows up as failures
in the three that follow): it loops forever, crashes, exits, warns, changes process state,
writes into the weights or the input it was given, or returns the wrong dtype. Each test
asserts the one clear failure, and that the other checks ran and passed. Runs that must leave
this process (crashes, xdist, another working directory) run in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import conformance
from rnnspec import harness

pytest_plugins = ["pytester"]

SUITE = str(Path(conformance.__file__).resolve().parent)
REPO = Path(conformance.__file__).resolve().parent.parent
QUIET = ("-p", "no:cacheprovider")
# Elman, I=5, H=7, one layer, h0 given: plain (where candidates misbehave), batch_first,
# bidirectional, bidirectional batch_first.
FOUR = (
    "-m",
    "parity",
    "-k",
    "elman-I5 and not layers2 and not no-bias and not hxNone and dtypefloat64 and not large",
    *QUIET,
)

HOSTILE = '''
import ctypes
import os
import warnings
from dataclasses import replace

import numpy as np
import torch

from rnnspec.protocol import Implementation, call_module, load_state_dict_weights

BASE = Implementation.from_module(torch.nn.RNN, name="hostile", cells={"elman"})


def first_case(module):
    return not module.bidirectional and not module.batch_first


def forever():
    while True:
        pass


def calling(name, action):
    """The base candidate, doing ``action`` in forward on the first case."""

    def call(module, x, hx):
        if first_case(module):
            action()
        return call_module(module, x, hx)

    return replace(BASE, name=name, call=call)


def building(name, action):
    """The base candidate, doing ``action`` while built for the first case."""

    def factory(config, device, dtype):
        module = BASE.factory(config, device, dtype)
        if first_case(module):
            action()
        return module

    return replace(BASE, name=name, factory=factory)


loops = calling("loops", forever)
exits = calling("exits", lambda: os._exit(0))
crashes = calling("crashes", lambda: os._exit(3))
segfaults = calling("segfaults", lambda: ctypes.string_at(0))
warns = calling("warns", lambda: warnings.warn("candidate says hello", UserWarning))
reseeds = calling("reseeds", lambda: torch.manual_seed(1234))
state_grad = building("grad", lambda: torch.set_grad_enabled(False))
state_dtype = calling("dtype", lambda: torch.set_default_dtype(torch.float64))
state_device = calling("device", lambda: torch.set_default_device("meta"))
state_numpy = calling("numpy", lambda: np.seterr(all="raise"))
state_threads = calling("threads", lambda: torch.set_num_threads(3))
state_deterministic = calling("deterministic", lambda: torch.use_deterministic_algorithms(True))
state_filters = calling("filters", lambda: warnings.simplefilter("error"))


def changes_dtype_when_loaded():
    torch.set_default_dtype(torch.float64)
    return BASE


def float32_call(module, x, hx):
    output, state = call_module(module, x, hx)
    return (output.float(), state) if first_case(module) else (output, state)


float32 = replace(BASE, name="float32", call=float32_call)


def scribble(module, weights):
    load_state_dict_weights(module, weights)
    if first_case(module):
        next(iter(weights.values())).mul_(2)


scribbles = replace(BASE, name="scribbles", load_weights=scribble)


def into_input(module, x, hx):
    output, state = call_module(module, x, hx)
    if isinstance(x, torch.Tensor) and x.shape == output.shape:
        return x.copy_(output), state
    return output, state


writes_into_input = replace(BASE, name="writes-into-input", call=into_input)
'''


@pytest.fixture
def hostile(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(hostile=HOSTILE)
    pytester.syspathinsert()
    return pytester


def outcomes(result: pytest.RunResult) -> tuple[int, int, int]:
    counts = result.parseoutcomes()
    return counts.get("passed", 0), counts.get("failed", 0), counts.get("skipped", 0)


def report(pytester: pytest.Pytester, name: str = "out") -> dict:
    return json.loads((pytester.path / f"{name}.json").read_text(encoding="utf-8"))


def failures(data: dict) -> list[tuple[str, str]]:
    return [(r["nodeid"].split("[")[1], r["failure"]) for r in data["results"] if r["failure"]]


def subprocess_env(pytester: pytest.Pytester) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(pytester.path), str(REPO)])}


# -- a candidate that hangs, crashes or exits ---------------------------------------------------


def test_a_candidate_that_loops_forever_fails_that_check_as_timeout(
    hostile: pytest.Pytester,
) -> None:
    result = hostile.runpytest(
        SUITE,
        "--impl",
        "hostile:loops",
        *FOUR,
        "--check-timeout",
        "1",
        "--conformance-report",
        "out",
    )
    assert outcomes(result) == (3, 1, 0)
    result.stdout.fnmatch_lines(
        ["*no result within 1 s (--check-timeout): the candidate loops*", "*timeout 1*"]
    )
    assert failures(report(hostile)) == [("elman-I5-H7-T6-B3-dtypefloat64]", "timeout")]


@pytest.mark.parametrize("candidate", ["crashes", "segfaults"])
def test_a_crashed_worker_is_recorded_and_the_run_goes_on(
    hostile: pytest.Pytester, candidate: str
) -> None:
    result = hostile.runpytest_subprocess(
        SUITE, "--impl", f"hostile:{candidate}", *FOUR, "-n", "2", "--conformance-report", "out"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    data = report(hostile)
    assert failures(data) == [("elman-I5-H7-T6-B3-dtypefloat64]", "crashed")]
    assert data["summary"] == {"parity": {"passed": 3, "failed": 1}}
    assert data["run"]["complete"] and data["run"]["crashed"] == 1
    assert data["run"]["collected"] == data["run"]["reported"] == 4


def test_a_run_cut_short_by_crashes_says_it_is_incomplete(hostile: pytest.Pytester) -> None:
    result = hostile.runpytest_subprocess(
        SUITE,
        "--impl",
        "hostile:crashes",
        *FOUR,
        "-n",
        "1",
        "--max-worker-restart",
        "0",
        "--conformance-report",
        "out",
    )
    assert result.ret != pytest.ExitCode.OK
    run = report(hostile)["run"]
    assert (run["complete"], run["collected"], run["reported"], run["crashed"]) == (False, 4, 1, 1)
    assert "run INCOMPLETE: 1 of 4 collected checks reported" in result.stdout.str()
    assert "**INCOMPLETE**" in (hostile.path / "out.md").read_text(encoding="utf-8")


def test_isolate_replaces_every_crashed_worker(hostile: pytest.Pytester) -> None:
    result = hostile.runpytest_subprocess(
        SUITE, "--impl", "hostile:crashes", *FOUR, "--isolate", "--conformance-report", "out"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "replacing crashed worker" in result.stdout.str()
    data = report(hostile)
    assert data["summary"] == {"parity": {"passed": 3, "failed": 1}}
    assert data["run"]["complete"]


def test_a_run_that_exits_midway_leaves_no_report_that_looks_complete(
    hostile: pytest.Pytester,
) -> None:
    good = hostile.runpytest(SUITE, "--impl", "torch", *FOUR, "--conformance-report", "out")
    assert good.ret == pytest.ExitCode.OK and report(hostile)["run"]["complete"]
    result = hostile.runpytest_subprocess(
        SUITE, "--impl", "hostile:exits", *FOUR, "--conformance-report", "out"
    )
    assert result.ret == pytest.ExitCode.OK  # os._exit(0): the exit status cannot tell
    data = report(hostile)
    assert (data["run"]["status"], data["run"]["complete"], data["results"]) == (
        "running",
        False,
        [],
    )
    assert data["implementation"] == "exits"


# -- state, warnings, weights, inputs, dtype -------------------------------------------------


@pytest.fixture
def torch_imported_lazily() -> None:
    """What use_deterministic_algorithms(True) imports (torch.distributed), imported before
    pytester snapshots sys.modules: dropped after the run, it would register ops twice."""
    torch.use_deterministic_algorithms(True)
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize(
    ("candidate", "change"),
    [
        ("grad", "torch grad mode: True -> False"),
        ("dtype", "torch default dtype: torch.float32 -> torch.float64"),
        ("device", "torch default device: cpu -> meta"),
        ("numpy", "numpy error state: {'divide': 'warn'*'raise'*"),
        ("threads", "torch threads: 1 -> 3"),
        ("deterministic", "torch deterministic algorithms: (False, False) -> (True, False)"),
        ("filters", "warning filters: a UserWarning now gives 'error', not 'always'"),
    ],
)
def test_a_global_state_change_fails_that_check_and_is_undone(
    torch_imported_lazily: None, hostile: pytest.Pytester, candidate: str, change: str
) -> None:
    before = harness.global_state()
    result = hostile.runpytest(SUITE, "--impl", f"hostile:state_{candidate}", *FOUR)
    assert outcomes(result) == (3, 1, 0), result.stdout.str()
    result.stdout.fnmatch_lines(
        [f"*the candidate changed global state: {change}*(restored for the next check)*"]
    )
    result.stdout.fnmatch_lines(["failures by kind: global-state 1"])
    after = harness.global_state()
    assert {k: v for k, v in after.items() if k != harness.RNG} == {
        k: v for k, v in before.items() if k != harness.RNG
    }


def test_random_generators_are_restored_without_failing(hostile: pytest.Pytester) -> None:
    state = torch.get_rng_state()
    result = hostile.runpytest(SUITE, "--impl", "hostile:reseeds", *FOUR)
    assert outcomes(result) == (4, 0, 0)
    assert torch.equal(torch.get_rng_state(), state)


def test_run_leaves_the_callers_state_as_it_was(hostile: pytest.Pytester) -> None:
    dtype = torch.get_default_dtype()
    assert conformance.run("hostile:changes_dtype_when_loaded", *FOUR) == pytest.ExitCode.OK
    assert torch.get_default_dtype() == dtype


def test_candidate_warnings_are_counted_never_failures_from_the_checkout(
    hostile: pytest.Pytester,
) -> None:
    """The kit's own pyproject.toml turns warnings into errors for tests/: not for a candidate."""
    config = ("-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO))
    result = hostile.runpytest_subprocess(
        SUITE, "--impl", "hostile:warns", *FOUR, *config, "--conformance-report", "out"
    )
    assert outcomes(result) == (4, 0, 0)
    result.stdout.fnmatch_lines(["candidate warnings: 1 in 1 checks (not failures)"])
    data = report(hostile)
    assert data["run"]["warnings"] == 1
    assert [r["warnings"] for r in data["results"] if r["warnings"]] == [
        ["UserWarning: candidate says hello"]
    ]


def test_a_float32_result_is_a_dtype_failure_not_a_value_mismatch(
    hostile: pytest.Pytester,
) -> None:
    result = hostile.runpytest(SUITE, "--impl", "hostile:float32", *FOUR)
    assert outcomes(result) == (3, 1, 0)
    result.stdout.fnmatch_lines(["*output has dtype float32, but should have float64*"])
    assert "but should be" not in result.stdout.str()


def test_a_candidate_that_writes_into_its_weights_is_caught(hostile: pytest.Pytester) -> None:
    result = hostile.runpytest(SUITE, "--impl", "hostile:scribbles", *FOUR)
    assert outcomes(result) == (3, 1, 0)
    result.stdout.fnmatch_lines(
        [
            "*scribbles: building the network modified the canonical weight weight_ih_l0 it was "
            "given*",
            "failures by kind: modified-weights 1",
        ]
    )


def test_an_output_written_into_the_input_is_caught(hostile: pytest.Pytester) -> None:
    mutation = ("-m", "robustness", "-k", "test_no_mutation and elman- and dtypefloat64", *QUIET)
    result = hostile.runpytest(SUITE, "--impl", "hostile:writes_into_input", *mutation)
    assert outcomes(result) == (2, 2, 0)
    result.stdout.fnmatch_lines_random(
        [
            "*output shares memory with input*[[]elman I=7 H=7 T=6 B=3*",
            "*output shares memory with input*[[]elman I=14 H=7 bidirectional T=6 B=3*",
        ]
    )
    honest = hostile.runpytest(SUITE, "--impl", "torch", *mutation)
    assert outcomes(honest) == (4, 0, 0)


# -- registration ------------------------------------------------------------------------------

ENTRY_POINTS = {
    "twin-a": "twin = twin_a:implementation",
    "twin-b": "twin = twin_b:implementation",
    "impostor": "torch = impostor:implementation",
    "exiting": "exiting = exiting_module:implementation",
    "interrupting": "interrupting = interrupting_module:implementation",
    "raising": "raising = raising_module:implementation",
}
MODULES = {
    "twin_a": "from rnnspec.implementations import torch_nn as implementation\n",
    "twin_b": "from rnnspec.implementations import reference as implementation\n",
    "impostor": "raise AssertionError('the impostor was imported')\n",
    "exiting_module": "raise SystemExit(3)\n",
    "interrupting_module": "raise KeyboardInterrupt\n",
    "raising_module": "raise RuntimeError('cannot load')\n",
}


@pytest.fixture
def hostile_site(tmp_path: Path) -> Path:
    """Installed distributions whose entry points collide or raise at import."""
    for dist, line in ENTRY_POINTS.items():
        info = tmp_path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[rnnspec.implementations]\n{line}\n")
    for module, text in MODULES.items():
        (tmp_path / f"{module}.py").write_text(text)
    return tmp_path


def run_with(site: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def test_list_names_and_skips_every_broken_or_colliding_entry_point(
    hostile_site: Path, tmp_path: Path
) -> None:
    listed = run_with(hostile_site, "-m", "rnnspec.cli", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    for expected in (
        "exiting  (exiting_module:implementation)\n  BROKEN     SystemExit: 3",
        "interrupting  (interrupting_module:implementation)\n  BROKEN     KeyboardInterrupt",
        "raising  (raising_module:implementation)\n  BROKEN     RuntimeError: cannot load",
        "torch  (impostor:implementation)\n  BROKEN     refused: 'torch' is rnnspec's built-in "
        "'rnnspec.implementations:torch_nn'",
        "twin  (twin_a:implementation)\n  BROKEN     refused: two entry points are named 'twin': "
        "'twin_a:implementation' and 'twin_b:implementation'",
        "torch  (rnnspec.implementations:torch_nn)\n  about",
    ):
        assert expected in out, out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "exiting",
            "exiting: entry point 'exiting_module:implementation' failed to load: SystemExit: 3",
        ),
        (
            "interrupting",
            "interrupting: entry point 'interrupting_module:implementation' failed "
            "to load: KeyboardInterrupt",
        ),
        (
            "raising",
            "raising: entry point 'raising_module:implementation' failed to load: "
            "RuntimeError: cannot load",
        ),
        (
            "twin",
            "twin: two entry points are named 'twin': 'twin_a:implementation' and "
            "'twin_b:implementation'; refusing both",
        ),
    ],
)
def test_impl_names_a_broken_or_colliding_entry_point(
    hostile_site: Path, tmp_path: Path, name: str, expected: str
) -> None:
    result = run_with(hostile_site, "-m", "pytest", SUITE, "--impl", name, *FOUR, cwd=tmp_path)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert f"ERROR: --impl: {expected}" in result.stderr
    assert "INTERNALERROR" not in result.stdout + result.stderr


def test_the_builtin_wins_over_an_entry_point_of_the_same_name(
    hostile_site: Path, tmp_path: Path
) -> None:
    result = run_with(hostile_site, "-m", "pytest", SUITE, "--impl", "torch", *FOUR, cwd=tmp_path)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
    assert "4 passed" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--impl", "torch", "--impl", "reference"],
            "*--impl: given twice ('torch' and 'reference'); one run checks one candidate*",
        ),
        (
            ["--impl", "torch", "--torch-threads", "0"],
            "*--torch-threads: must be a whole number >= 1, got '0'*",
        ),
        (["--impl", "torch", "--check-timeout", "-1"], "*--check-timeout: must be seconds >= 0*"),
        (
            ["--impl", "torch", "--speed-cpu", "first"],
            "*--speed-cpu: must be a CPU number, auto or none, got 'first'*",
        ),
        (
            ["--impl", "torch", "--speed-visits", "0"],
            "*--speed-visits: must be a whole number >= 1, got '0'*",
        ),
        (
            ["--impl", "torch", "-m", "parityy"],
            "*-m parityy: unknown category 'parityy'; the categories are shapes, layout, parity*",
        ),
        (
            ["--impl", "hostile.py"],
            "*--impl: hostile.py: is a file path, not an implementation: "
            "--impl takes an entry point name (registered: *torch*) or package.module:attribute*",
        ),
        (["--impl", "model.pt"], "*--impl: model.pt: is a file path, not an implementation*"),
    ],
)
def test_usage_errors_say_what_to_do(
    hostile: pytest.Pytester, argv: list[str], expected: str
) -> None:
    result = hostile.runpytest(SUITE, *argv, "-k", "nothing", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


# -- reports -----------------------------------------------------------------------------------


def test_a_run_with_no_results_still_replaces_the_report(pytester: pytest.Pytester) -> None:
    good = pytester.runpytest(SUITE, "--impl", "torch", *FOUR, "--conformance-report", "out")
    assert good.ret == pytest.ExitCode.OK and len(report(pytester)["results"]) == 4
    empty = pytester.runpytest(
        SUITE,
        "--impl",
        "torch",
        "-m",
        "parity",
        "-k",
        "nothing",
        *QUIET,
        "--conformance-report",
        "out",
    )
    assert empty.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    data = report(pytester)
    assert data["results"] == [] and data["summary"] == {}
    assert {k: data["run"][k] for k in ("exit_status", "collected", "reported", "complete")} == {
        "exit_status": 5,
        "collected": 0,
        "reported": 0,
        "complete": True,
    }


def test_a_report_path_keeps_its_suffix(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(SUITE, "--impl", "torch", *FOUR, "--conformance-report", "r.v2")
    assert result.ret == pytest.ExitCode.OK
    assert sorted(path.name for path in pytester.path.glob("r*")) == ["r.v2.json", "r.v2.md"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda path: (path / "out.json").mkdir(), "*out.json is a directory; give a file path*"),
        (
            lambda path: (path / "out.json").symlink_to("/dev/null"),
            "*out.json is not a regular file; give a file path*",
        ),
        (
            lambda path: (
                (path / "out.md").write_text("# rnnspec conformance report: x\n"),
                (path / "out.md").chmod(0o444),
            ),
            "*out.md is read-only; refusing to replace it*",
        ),
        (
            lambda path: (path / "out.md").write_text("my notes\n"),
            "*out.md exists and was not written by rnnspec; refusing to overwrite it*",
        ),
        (
            lambda path: (path / "notadir").write_text(""),
            "*notadir is not a directory; cannot write*",
        ),
    ],
    ids=["directory", "device", "read-only", "foreign", "file-as-folder"],
)
def test_the_report_path_is_checked_before_any_check_runs(
    pytester: pytest.Pytester, make: object, expected: str
) -> None:
    make(pytester.path)  # type: ignore[operator]
    target = "notadir/out" if "notadir" in expected else "out"
    result = pytester.runpytest(SUITE, "--impl", "torch", *FOUR, "--conformance-report", target)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --conformance-report *{expected}"])
    assert "passed" not in result.stdout.str()


SHUFFLE = """
import random


def pytest_collection_modifyitems(items):
    random.Random(7).shuffle(items)
"""
# Checks of three categories, with ties in the largest errors (float64 runs matching exactly).
MIXED = (
    "-m",
    "parity or robustness or shapes",
    "-k",
    "elman-I5 and not layers2 and not large",
    *QUIET,
)


def test_the_report_is_the_same_serially_in_parallel_and_shuffled(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(shuffle=SHUFFLE)
    pytester.syspathinsert()
    runs = {
        "serial": pytester.runpytest(SUITE, "--impl", "torch", *MIXED, "--conformance-report", "a"),
        "shuffled": pytester.runpytest(
            SUITE, "--impl", "torch", *MIXED, "-p", "shuffle", "--conformance-report", "b"
        ),
        "parallel": pytester.runpytest_subprocess(
            SUITE, "--impl", "torch", *MIXED, "-n", "2", "--conformance-report", "c"
        ),
    }
    assert {name: run.ret for name, run in runs.items()} == dict.fromkeys(runs, 0)
    for suffix in (".json", ".md"):
        a, b, c = ((pytester.path / f"{n}{suffix}").read_bytes() for n in "abc")
        assert a == b == c
    data = report(pytester, "a")
    assert data["environment"]["threads"] == 1
    assert data["results"] == sorted(data["results"], key=lambda r: r["nodeid"])
    assert len(data["results"]) > 20
