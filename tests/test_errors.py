"""Bad input gets one clear line, never a traceback, and nothing a user wrote is overwritten."""

import gc
import json
from pathlib import Path

import pytest
import torch

import conformance
from rnnspec import cli, registry
from rnnspec.errors import ImplementationError

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
