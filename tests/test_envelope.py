"""Every candidate is checked across everything it declares (issue 12).

Capabilities say what a candidate is; the cases are fitted to that envelope; what cannot
run anywhere in it is skipped once per cell and reason; a candidate may decline a case
with ``rnnspec.Unsupported``. The proof is ``tests/seeds_style``: candidates written the
way the seed notebooks write RNNs, each run through every check of the suite inside its
envelope (as ``pytest conformance --impl`` would), with the verdict asserted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

import conformance
import rnnspec
from rnnspec import implementations, tolerance
from rnnspec.cases import fit, for_envelope, make_case, nearest_dtype, unsupported
from rnnspec.checks import device, gradients, ignore, parity, robustness, transforms
from rnnspec.checks.suite import CHECK_CATEGORIES
from rnnspec.compare import CheckFailure
from rnnspec.config import RNNConfig
from rnnspec.harness import Unsupported
from rnnspec.protocol import Capabilities, Implementation
from tests.seeds_style import cell_loop, d2l_scratch, lstm_float32, numpy_dummy, stacked_squeeze
from tests.test_zoo import suite

pytest_plugins = ["pytester"]

SUITE = str(Path(conformance.__file__).resolve().parent)


@dataclass
class Verdict:
    """Checks passed, failed and skipped per category, and each category's failures."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    failures: dict[str, list[CheckFailure]] = field(default_factory=dict)

    def ran(self, category: str) -> int:
        return self.counts[category]["passed"] + self.counts[category]["failed"]

    def failed(self) -> set[str]:
        return {category for category, found in self.failures.items() if found}


def verdict(impl: Implementation) -> Verdict:
    """Every check of every category on the cases fitted to ``impl``'s envelope."""
    result = Verdict()
    cells = sorted(impl.capabilities.cells)
    for category in CHECK_CATEGORIES:
        counts, failures = result.counts.setdefault(category, Counter()), []
        for check in suite(category):
            for case in for_envelope(check.provider, cells, impl.capabilities):
                try:
                    check.run(impl, case, ignore)
                except Unsupported:
                    counts["skipped"] += 1
                except CheckFailure as failure:
                    counts["failed"] += 1
                    failures.append(failure)
                else:
                    counts["passed"] += 1
        result.failures[category] = failures
    return result


# --- capabilities ---------------------------------------------------------------------------

BATCH_FIRST = RNNConfig(cell="elman", batch_first=True)
TIME_MAJOR = RNNConfig(cell="elman")


def test_fields_written_before_layouts_keep_their_meaning() -> None:
    """``batch_first=False`` is time-major only, ``unbatched=False`` batched only, and the
    defaults are torch.nn's (everything)."""
    time_major_only = Capabilities(batch_first=False)
    assert time_major_only.unsupported(BATCH_FIRST) == "batch_first not supported"
    assert time_major_only.unsupported(TIME_MAJOR) is None
    batched_only = Capabilities(unbatched=False)
    assert batched_only.unsupported(TIME_MAJOR, unbatched=True) == "unbatched input not supported"
    assert batched_only.unsupported(TIME_MAJOR) is None
    everything = Capabilities()
    for config in (BATCH_FIRST, TIME_MAJOR, TIME_MAJOR.replace(bidirectional=True)):
        for unbatched in (False, True):
            assert everything.unsupported(config, unbatched=unbatched, initial_state=True) is None


def test_new_fields_say_what_the_narrow_candidates_are() -> None:
    """Batch-first only, unbatched only, no h0, bidirectional only: each a reason."""
    narrow = Capabilities(
        time_major=False, batched=False, initial_state=False, unidirectional=False
    )
    fits = BATCH_FIRST.replace(bidirectional=True)
    assert narrow.unsupported(fits, unbatched=True) is None
    assert narrow.unsupported(fits.replace(batch_first=False), unbatched=True) == (
        "time-major input not supported (batch_first only)"
    )
    assert narrow.unsupported(fits) == "batched input not supported (unbatched only)"
    assert narrow.unsupported(fits, unbatched=True, initial_state=True) == (
        "an initial state (hx) not accepted"
    )
    assert narrow.unsupported(BATCH_FIRST, unbatched=True) == (
        "unidirectional not supported (bidirectional only)"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(time_major=False, batch_first=False), "leave no a layout"),
        (dict(batched=False, unbatched=False), "leave no batched or unbatched input"),
        (dict(unidirectional=False, bidirectional=False), "leave no a direction"),
        (dict(max_layers=0), "max_layers must be >= 1"),
        (dict(dtypes=frozenset()), "dtypes must be a non-empty subset"),
        (dict(dtypes={"float8"}), "dtypes must be a non-empty subset"),
        (dict(devices={"tpu"}), "devices must be a non-empty subset"),
        (dict(precision="int8"), "precision must be None or one of"),
    ],
)
def test_an_impossible_envelope_is_refused_at_registration(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Capabilities(**fields)


def test_collections_are_stored_as_frozensets() -> None:
    declared = Capabilities(cells={"gru"}, dtypes=["float32"], devices=("cpu",))
    assert declared.cells == frozenset({"gru"}) and isinstance(declared.dtypes, frozenset)
    assert hash(declared) == hash(Capabilities(cells={"gru"}, dtypes={"float32"}, devices={"cpu"}))


# --- fitting cases to the envelope ------------------------------------------------------------


def test_fit_moves_a_case_to_the_nearest_declared_configuration() -> None:
    case = make_case("gru", 3, True, batch_first=True, dtype="float64", steps=4, batch=2)
    narrow = Capabilities(
        max_layers=2,
        bidirectional=False,
        batch_first=False,
        initial_state=False,
        dtypes={"float32", "bfloat16"},
    )
    fitted = fit(case, narrow)
    assert fitted == make_case(
        "gru", 2, False, dtype="float32", given_state=False, steps=4, batch=2
    )
    assert fit(case, narrow, keep={"dtype", "initial_state"}) == fitted.replace(
        dtype="float64", given_state=True
    )
    unbatched_only = Capabilities(batched=False, time_major=False)
    assert fit(case, unbatched_only).unbatched and fit(case, unbatched_only).config.batch_first
    assert fit(case, Capabilities()) == case


def test_fit_never_invents_or_drops_a_feature() -> None:
    packed = make_case("lstm", 2, True, proj_size=3, steps=6, batch=3, lengths=(2, 6, 1))
    plain = Capabilities(packed=False, proj_size=False, batched=False)
    assert fit(packed, plain) == packed
    assert plain.unsupported(packed.config) == "proj_size not supported"


@pytest.mark.parametrize(
    ("dtype", "declared", "nearest"),
    [
        ("float64", {"float32", "float16"}, "float32"),
        ("bfloat16", {"float64", "float16"}, "float16"),
        ("float32", {"float64", "float16"}, "float64"),
        ("float16", {"float64"}, "float64"),
    ],
)
def test_nearest_dtype(dtype: str, declared: set[str], nearest: str) -> None:
    assert nearest_dtype(dtype, declared) == nearest


def test_precision_is_labelled_and_sets_the_tolerance() -> None:
    computes_in_float32 = Capabilities(precision="float32")
    case = fit(make_case("lstm", 2, dtype="float64", steps=6), computes_in_float32)
    assert case.precision == "float32"
    assert "dtype=float64 precision=float32" in case.label()
    assert tolerance.for_case(case) == tolerance.tolerance("float32", 6, 2)
    assert tolerance.for_case(case, gradient=True) == tolerance.tolerance(
        "float32", 6, 2, gradient=True
    )
    coarser = fit(case.replace(dtype="float16", precision=None), computes_in_float32)
    assert coarser.precision is None  # float16 input is judged as float16
    assert tolerance.for_case(coarser) == tolerance.tolerance("float16", 6, 2)


def test_torch_keeps_every_case_of_the_fixed_grid() -> None:
    """For torch.nn's envelope nothing moves: the suite's cases are the providers' own
    (same ids), plus their float32 twins."""
    torch_nn = implementations.torch_nn().capabilities
    cells = sorted(torch_nn.cells)
    for category in CHECK_CATEGORIES:
        for check in suite(category):
            fixed = check.provider(cells)
            enveloped = for_envelope(check.provider, cells, torch_nn)
            assert set(fixed) <= set(enveloped), f"{category}: {check.name}"
            assert len(set(enveloped)) == len(enveloped), f"{category}: {check.name} has duplicates"


def test_cases_that_fitting_folds_together_run_at_other_sizes() -> None:
    """A one-layer, one-direction, batch-first candidate keeps every case of the grid: the
    cases that fitting folds onto an earlier one run at larger sizes, I/H ratio kept."""
    narrow = cell_loop.implementation.capabilities
    fixed = parity.cases(["elman"])
    folded = {fit(case, narrow) for case in fixed}
    runnable = [
        case
        for case in for_envelope(parity.cases, ["elman"], narrow)
        if unsupported(narrow, case) is None
    ]
    assert len(folded) < len(runnable) == len(set(runnable)) == len(fixed)
    ratios = {(c.config.input_size, c.config.hidden_size) for c in fixed}
    assert len(ratios) == 1
    ((input_size, hidden_size),) = ratios
    for case in runnable:
        assert case.config.input_size * hidden_size == case.config.hidden_size * input_size
        assert fit(case, narrow) == case


def test_single_dtype_cases_run_in_the_nearest_declared_dtype_without_twins() -> None:
    """Transforms need one dtype, not a particular one: float32 for torch.nn, float64 for a
    float64-only candidate (which ran no transform before)."""
    float64_only = Capabilities(dtypes={"float64"})
    fitted = for_envelope(transforms.compile_cases, ["gru"], float64_only)
    assert fitted and {case.dtype for case in fitted} == {"float64"}
    torch_nn = for_envelope(transforms.compile_cases, ["gru"], Capabilities())
    assert torch_nn == transforms.compile_cases(["gru"])
    assert {case.dtype for case in torch_nn} == {"float32"}


def test_what_cannot_run_is_kept_once_per_cell_and_reason() -> None:
    no_packing = Capabilities(cells={"gru", "lstm"}, packed=False, initial_state=False)
    cases = for_envelope(robustness.packed_cases, ["gru", "lstm", "elman"], no_packing)
    reasons = Counter((case.config.cell, unsupported(no_packing, case)) for case in cases)
    assert reasons == {
        ("gru", "packed sequences not supported"): 1,
        ("lstm", "packed sequences not supported"): 1,
        ("elman", "cell elman not supported (supports: gru, lstm)"): 1,
    }
    chunks = for_envelope(robustness.chunk_cases, ["gru"], no_packing)
    assert [unsupported(no_packing, case, initial_state=True) for case in chunks] == [
        "an initial state (hx) not accepted"
    ]


# --- Unsupported raised by the candidate --------------------------------------------------------


def _declining(where: str) -> Implementation:
    """torch.nn, but declining bidirectional networks from ``where``."""
    base = implementations.torch_nn()

    def decline(config: RNNConfig) -> None:
        if config.bidirectional:
            raise rnnspec.Unsupported(f"no reverse direction ({where})")

    def factory(config: RNNConfig, device: Any, dtype: Any) -> Any:
        if where == "factory":
            decline(config)
        return base.factory(config, device, dtype)

    def load_weights(module: Any, weights: Any) -> None:
        if where == "load_weights":
            decline(module_config(module))
        base.load_weights(module, weights)

    def call(module: Any, x: Any, hx: Any) -> Any:
        if where == "call":
            decline(module_config(module))
        return base.call(module, x, hx)

    return replace(
        base, name=f"declines-in-{where}", factory=factory, load_weights=load_weights, call=call
    )


def module_config(module: Any) -> RNNConfig:
    return RNNConfig(cell="lstm", bidirectional=module.bidirectional)


@pytest.mark.parametrize("where", ["factory", "load_weights", "call"])
def test_unsupported_from_the_candidate_is_a_skip(where: str) -> None:
    impl = _declining(where)
    for check, case in (
        (parity.check_forward, make_case("lstm", 2, True, steps=6)),
        (gradients.check_gradients, make_case("lstm", 1, True, steps=5)),
        (device.check_meta, make_case("lstm", 1, True, device="meta", dtype="float32", steps=2)),
    ):
        with pytest.raises(rnnspec.Unsupported, match=f"no reverse direction \\({where}\\)"):
            check(impl, case, ignore)
        check(impl, case.replace(config=case.config.replace(bidirectional=False)), ignore)
    assert rnnspec.Unsupported is Unsupported and issubclass(Unsupported, rnnspec.RnnSpecError)


# --- the seeds' candidates, each run through the whole suite inside its envelope ------------


def assert_passes_every_category(found: Verdict) -> None:
    __tracebackhide__ = True
    for category in CHECK_CATEGORIES:
        assert found.ran(category) >= 1, f"no {category} check ran: {found.counts}"
        assert not found.failures[category], f"{category}: {found.failures[category][0]}"


@pytest.mark.parametrize(
    "impl",
    [
        cell_loop.implementation,
        d2l_scratch.implementation,
        lstm_float32.implementation,
        lstm_float32.float64_in_float32,
    ],
    ids=lambda impl: impl.name,
)
def test_correct_seed_style_candidates_pass_every_category(impl: Implementation) -> None:
    assert_passes_every_category(verdict(impl))


@pytest.mark.parametrize(
    "narrowed",
    [dict(batched=False), dict(unidirectional=False), dict(time_major=False, initial_state=False)],
    ids=["unbatched-only", "bidirectional-only", "batch-first-without-h0"],
)
def test_torch_nn_declared_narrower_passes_every_category(narrowed: dict[str, bool]) -> None:
    """torch.nn declared as less than it is: every check still runs, fitted (batched cases
    as one sequence, one direction as two, time-major as batch-first without h0)."""
    torch_nn = implementations.torch_nn()
    declared = replace(torch_nn.capabilities, cells={"elman"}, **narrowed)
    assert_passes_every_category(verdict(replace(torch_nn, capabilities=declared)))


def test_float32_only_runs_every_category_in_float32() -> None:
    found = verdict(lstm_float32.implementation)
    ran = {
        case.dtype
        for category in ("shapes", "layout", "parity", "gradients", "robustness")
        for check in suite(category)
        for case in for_envelope(check.provider, ["lstm"], lstm_float32.implementation.capabilities)
        if unsupported(lstm_float32.implementation.capabilities, case) is None
    }
    assert ran == {"float32"}
    assert all(found.ran(category) for category in CHECK_CATEGORIES)


def test_precision_declared_is_what_makes_float64_in_float32_pass() -> None:
    """Computing in float32 behind a float64 interface passes when declared, and fails
    parity at float64's tolerance when not."""
    undeclared = replace(
        lstm_float32.float64_in_float32,
        capabilities=replace(lstm_float32.float64_in_float32.capabilities, precision=None),
    )
    failures = verdict(undeclared).failures["parity"]
    assert failures and all(failure.kind == "mismatch" for failure in failures)
    assert all("dtype=float64]" in str(failure) for failure in failures)


def test_no_nonlinearity_on_the_recurrence_fails_parity() -> None:
    """Seed 000's DummyRNN: every category that compares values fails, as a mismatch
    (parity first among them); its shapes are right; NumPy runs no gradients."""
    found = verdict(numpy_dummy.implementation)
    assert found.failed() == {"parity", "layout", "device", "dtype", "robustness"}
    assert {failure.kind for failure in found.failures["parity"]} == {"mismatch"}
    assert found.ran("shapes") >= 1 and found.ran("gradients") == 0
    diagnoses = {str(failure.details["diagnosis"]) for failure in found.failures["parity"]}
    assert all("tanh_read_out" in text for text in diagnoses), diagnoses
    assert any("applies tanh only to the output it reads out" in text for text in diagnoses)


def test_stacked_squeeze_and_zero_state_without_device_fail_shapes_and_device() -> None:
    """Seed 003's stacked RNN: ``.squeeze()`` fails shapes at B = 1 (and the size-one
    robustness checks); the CPU zero state fails on the meta device, caught by the stacked
    batch-first hx=None case; its numbers pass parity, layout, gradients and dtype."""
    found = verdict(stacked_squeeze.implementation)
    assert found.failed() == {"shapes", "device", "robustness"}
    assert {failure.kind for failure in found.failures["shapes"]} == {"shape"}
    assert any("B=1" in str(failure) for failure in found.failures["shapes"])
    assert all(
        "with its size-one dimensions dropped, as `.squeeze()` without a dimension does"
        in str(failure.details["diagnosis"])
        for failure in found.failures["shapes"]
    )
    assert all(
        "matches zero_state_device" in str(failure.details["diagnosis"])
        for failure in found.failures["device"]
    )
    meta = [str(failure) for failure in found.failures["device"]]
    assert all(failure.kind == "device" for failure in found.failures["device"])
    assert any("layers=2 batch_first T=2 B=3 hx=None" in message for message in meta), meta
    for category in ("parity", "layout", "gradients", "dtype"):
        assert found.ran(category) >= 1 and not found.failures[category]


def test_readme_worked_example_passes_every_category() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    marker = "<!-- worked example: tests/test_envelope.py runs the next block -->\n```python\n"
    source = readme[readme.index(marker) + len(marker) :].split("\n```\n")[0]
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md (worked example)", "exec"), namespace)
    found = verdict(namespace["implementation"])
    assert_passes_every_category(found)
    skipped = Counter(
        unsupported(namespace["implementation"].capabilities, case)
        for category in CHECK_CATEGORIES
        for check in suite(category)
        for case in for_envelope(
            check.provider, ["elman"], namespace["implementation"].capabilities
        )
    )
    for reason in (
        "packed sequences not supported",
        "unbatched input not supported",
        "bias=False not supported",
        "dropout not supported",
    ):
        assert skipped[reason] >= 1, skipped


# --- the run's summary and report ----------------------------------------------------------------

NO_GRADIENTS = """
from tests.seeds_style import d2l_scratch
from dataclasses import replace
no_gradients = replace(
    d2l_scratch.implementation,
    capabilities=replace(d2l_scratch.implementation.capabilities, gradients=False),
)
"""


def test_a_category_that_ran_nothing_is_flagged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(declared=NO_GRADIENTS)
    pytester.syspathinsert()
    pytester.syspathinsert(Path(__file__).resolve().parents[1])
    report = pytester.path / "report"
    result = pytester.runpytest(
        SUITE,
        "--impl",
        "declared:no_gradients",
        "-m",
        "gradients or parity",
        "--conformance-report",
        str(report),
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "RAN NO CHECK for a declared cell (every check skipped):",
            "  gradients    elman: gradients not supported",
        ]
    )
    data = json.loads(report.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["ran_nothing"] == [
        {"category": "gradients", "cell": "elman", "reason": "gradients not supported"}
    ]
    markdown = report.with_suffix(".md").read_text(encoding="utf-8")
    assert "| gradients | elman | gradients not supported |" in markdown
    outside = {(row["category"], row["cell"], row["reason"]) for row in data["skipped_by_cell"]}
    assert ("parity", "elman", "bias=False not supported") in outside
    assert ("gradients", "elman", "gradients not supported") in outside
    assert "| parity | elman | 1 | bias=False not supported |" in markdown
