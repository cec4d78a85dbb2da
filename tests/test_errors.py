"""Bad input gets one clear line, never a traceback, and nothing a user wrote is overwritten."""

import gc
import json
from pathlib import Path

import pytest
import torch

import conformance
from rnnspec import cli, registry, speed
from rnnspec.errors import ImplementationError
from rnnspec.results import GENERATOR, Results
from tests.test_bench_report import record

pytest_plugins = ["pytester"]
SUITE = str(Path(conformance.__file__).resolve().parent)
ONE_CASE = ("-m", "parity", "-k", "elman-I5-H7-T6-B3-dtypefloat64", "-p", "no:cacheprovider")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("torch.nn:LSTM", "resolves to type, expected rnnspec.protocol.Implementation"),
        ("no_such_package_xyz.mod:impl", "ModuleNotFoundError: No module named"),
        ("os:no_such_attribute", "AttributeError: module 'os' has no attribute"),
        ("json:loads", "resolves to function, expected"),
    ],
)
def test_a_bad_impl_target_is_an_implementation_error(target: str, expected: str) -> None:
    with pytest.raises(ImplementationError, match=expected):
        registry.load(target)


def test_a_bad_impl_target_is_a_usage_error_not_an_internal_error(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest(SUITE, "--impl", "torch.nn:LSTM", *ONE_CASE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --impl: torch.nn:LSTM: resolves to type*from_module*"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["show", "/no/such/spec.toml"], "cannot read spec file /no/such/spec.toml"),
        (["show", "--format", "latex"], "--format latex renders a cell's equations; name a SPEC"),
        (
            ["diagnose", "--impl", "torch", "--config", "lengths=a"],
            "lengths must be comma-separated",
        ),
        (["diagnose", "--impl", "torch", "--config", "hidden_size=x"], "hidden_size must be int"),
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnspec: error: ") and expected in error
    assert error.count("\n") == 1


def test_generate_refuses_to_overwrite_a_file_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "torch" / "lstm.py"
    mine.parent.mkdir()
    mine.write_text("my own code\n", encoding="utf-8")
    assert cli.main(["generate", "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert mine.read_text(encoding="utf-8") == "my own code\n"
    mine.unlink()
    assert cli.main(["generate", "--out", str(tmp_path)]) == 0
    assert cli.main(["generate", "--out", str(tmp_path)]) == 0  # its own files are rewritten


def test_conformance_report_refuses_to_overwrite_a_foreign_file(pytester: pytest.Pytester) -> None:
    (pytester.path / "out.json").write_text('{"mine": true}\n', encoding="utf-8")
    result = pytester.runpytest(SUITE, "--impl", "torch", *ONE_CASE, "--conformance-report", "out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*out.json exists and was not written by rnnspec*"])
    assert json.loads((pytester.path / "out.json").read_text(encoding="utf-8")) == {"mine": True}
    (pytester.path / "out.json").unlink()
    for _ in range(2):  # the second run replaces rnnspec's own report
        result = pytester.runpytest(
            SUITE, "--impl", "torch", *ONE_CASE, "--conformance-report", "out"
        )
        assert result.ret == pytest.ExitCode.OK


def test_the_suite_leaves_a_host_process_frozen_objects_frozen(
    pytester: pytest.Pytester,
) -> None:
    gc.freeze()
    try:
        result = pytester.runpytest(SUITE, "--impl", "torch", *ONE_CASE)
        assert result.ret == pytest.ExitCode.OK
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_suite_gives_torch_its_threads_and_gc_back(pytester: pytest.Pytester) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = pytester.runpytest(SUITE, "--impl", "torch", *ONE_CASE)
        assert result.ret == pytest.ExitCode.OK
        assert torch.get_num_threads() == 2
        assert gc.get_freeze_count() == 0
    finally:
        torch.set_num_threads(before)


def _bench(records: list) -> str:
    entries = [{"name": "x", "extra_info": {speed.RECORD_KEY: r}} for r in records]
    return json.dumps({"benchmarks": entries})


def _with(**changes: object) -> dict:
    good = record()
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = good
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[key]
        else:
            target[key] = value
    return good


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "not JSON (Expecting property name"),
        (b"\xff\xfe\x00", "not JSON (not UTF-8 text)"),
        ("[1, 2]", "not a pytest-benchmark JSON file (no 'benchmarks' list)"),
        ('{"benchmarks": {"a": 1}}', "not a pytest-benchmark JSON file (no 'benchmarks' list)"),
        ('{"benchmarks": [5, "x"]}', "no rnnspec speed results"),
        (_bench([5]), "speed results of format ['None']"),
        (_bench([_with(cell=None)]), "speed result 0: missing 'cell'"),
        (_bench([_with(steps="6")]), "speed result 0: 'steps' is str '6', expected int"),
        (
            _bench([_with(candidate__median="fast")]),
            "speed result 0: 'candidate.median' is str 'fast', expected int/float",
        ),
        (_bench([_with(ratio=[1.0])]), "speed result 0: 'ratio' is list, not an object"),
        ("[" * 100_000 + "]" * 100_000, "not JSON (maximum recursion depth exceeded"),
        (None, "it is a directory"),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "a-list",
        "benchmarks-not-a-list",
        "entries-not-objects",
        "record-not-an-object",
        "missing-key",
        "wrong-type",
        "nested-wrong-type",
        "nested-not-an-object",
        "deep-nesting",
        "a-directory",
    ],
)
def test_report_names_what_is_wrong_with_its_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes | None, expected: str
) -> None:
    source = tmp_path / "bench.json"
    if content is None:
        source.mkdir()
    elif isinstance(content, bytes):
        source.write_bytes(content)
    else:
        source.write_text(content, encoding="utf-8")
    assert cli.main(["report", str(source), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("rnnspec: error: ") and error.count("\n") == 1, error
    assert expected in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"summary": {}, "results": []}, "not a conformance report (written by"),
        ({"generator": GENERATOR, "results": []}, "missing implementation"),
        ("conformance", "results is str, not as rnnspec writes it"),
        ("result", "results[0] is int, not an object"),
    ],
)
def test_report_checks_the_conformance_report_it_includes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: object, expected: str
) -> None:
    valid = Results().as_dict(None)
    if data == "conformance":
        data = {**valid, "results": "all passed"}
    elif data == "result":
        data = {**valid, "results": [1]}
    bench = tmp_path / "bench.json"
    bench.write_text(_bench([record()]), encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(data), encoding="utf-8")
    argv = ["report", str(bench), "--conformance", str(tmp_path / "c.json"), "--out", "x"]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
