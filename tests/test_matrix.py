"""--xfails and rnnspec matrix."""

from __future__ import annotations

from pathlib import Path

import pytest

import conformance
from rnnspec import matrix, xfails
from rnnspec.errors import ConfigError

pytest_plugins = ["pytester"]
SUITE = str(Path(conformance.__file__).resolve().parent)
BUGGY = ("--impl", "scratch-lstm-buggy", "-m", "parity", "-k", "lstm-I5-H7-T6-B3-dtype")


def test_xfails_file_needs_a_reason_per_entry(tmp_path: Path) -> None:
    path = tmp_path / "xfails.txt"
    path.write_text("# comment\n\ntest_parity.py::test_forward[*]  # gate order\n")
    (entry,) = xfails.read(path)
    assert entry.reason == "gate order"
    assert entry.matches("conformance/test_parity.py::test_forward[lstm-I5]")
    path.write_text("test_parity.py::test_forward[*]\n")
    with pytest.raises(ConfigError, match=r"xfails.txt:1: an entry is 'PATTERN  # REASON'"):
        xfails.read(path)


def test_xfails_turn_failures_into_expected_ones_and_passes_into_failures(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("scratch_rnn")
    known = pytester.makefile(
        ".txt",
        xfails="test_parity.py::test_forward[*]  # planted gate order\n"
        "test_nothing.py::*  # stale\n",
    )
    result = pytester.runpytest(SUITE, *BUGGY, "--xfails", str(known), "-p", "no:cacheprovider")
    counts = result.parseoutcomes()
    assert counts.get("xfailed", 0) > 0 and counts.get("failed", 0) == 0
    result.stdout.fnmatch_lines(
        ["*rnnspec warning: --xfails line 2: 'test_nothing.py::*' matches no check*"]
    )
    fixed = pytester.runpytest(
        SUITE,
        "--impl",
        "scratch-lstm",
        *BUGGY[2:],
        "--xfails",
        str(known),
        "-p",
        "no:cacheprovider",
    )
    assert fixed.parseoutcomes().get("failed", 0) > 0  # XPASS(strict): the bug went away
    fixed.stdout.fnmatch_lines(["*XPASS(strict)*planted gate order*"])


def test_summarise_counts_per_cell_and_category_and_keeps_the_first_diagnosis() -> None:
    report = {
        "results": [
            {
                "nodeid": "c/test_parity.py::test_forward[gru-I5]",
                "category": "parity",
                "outcome": "failed",
                "message": "output differs",
                "diagnosis": {"verdict": "first"},
            },
            {
                "nodeid": "c/test_parity.py::test_forward[gru-I7]",
                "category": "parity",
                "outcome": "failed",
                "message": "again",
                "diagnosis": None,
            },
            {
                "nodeid": "c/test_shapes.py::test_shapes[gru:reset_before-I5]",
                "category": "shapes",
                "outcome": "passed",
                "message": "",
                "diagnosis": None,
            },
        ]
    }
    run = matrix.summarise("x", 1, 1.0, report)
    assert run.counts[("gru", "parity")]["failed"] == 2
    assert run.first_failure == {("gru", "parity"): "first"}
    text = matrix.markdown([run])
    assert "| x | gru | " in text and "- x, gru, parity: first" in text
    assert "| x | gru:reset_before | 1/0/0 |" in text


def test_matrix_runs_each_implementation_and_refuses_foreign_files(tmp_path: Path) -> None:
    from rnnspec.cli import main

    (tmp_path / "matrix.md").write_text("mine\n")
    assert main(["matrix", "--impl", "torch", "--out", str(tmp_path)]) == 2
    (tmp_path / "matrix.md").unlink()
    code = main(
        [
            "matrix",
            "--impl",
            "torch",
            "--out",
            str(tmp_path),
            "--",
            "-m",
            "parity",
            "-k",
            "lstm-I5-H7-T6-B3-dtype",
        ]
    )
    assert code == 0
    text = (tmp_path / "matrix.md").read_text()
    assert "| torch | lstm | " in text and (tmp_path / "reports" / "torch.json").exists()
