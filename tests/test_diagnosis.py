"""The diagnosis: it names the bug of the zoo's entries whose bug is in the library, says so
when a bug is not, and points at the first diverging step, layer, direction and state."""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance
from rnnspec import cli, diagnosis, harness
from rnnspec.cases import Case, fit
from rnnspec.checks import gradients, ignore, parity, robustness
from rnnspec.compare import CheckFailure
from rnnspec.config import RNNConfig
from rnnspec.diagnosis import failures
from rnnspec.harness import make_inputs
from rnnspec.implementations import torch_nn
from rnnspec.protocol import (
    Capabilities,
    Implementation,
    load_state_dict_weights,
    named_parameter_gradients,
)
from rnnspec.spec import shipped_spec_paths, shipped_specs
from rnnspec.tolerance import tolerance
from tests.zoo import ZOO, scratch

pytest_plugins = ["pytester"]

LIBRARY_NAMES = {
    "gate_permutation:{order}",
    "gru_reset_before",
    "gru_reset_after",
    "missing_bias_ih",
    "missing_bias_hh",
    "biases_folded",
    "missing_b_hn",
    "hidden_forget_bias",
    "no_nonlinearity",
    "tanh_read_out",
    "relu_for_tanh",
    "tanh_for_relu",
    "hard_sigmoid",
    "gru_interpolation_swapped",
    "transposed_weight",
    "hx_ignored",
    "h0_direction_major",
    "hn_direction_major",
    "reverse_over_padding",
    "reverse_not_realigned",
    "layers_fed_swapped",
    "directions_swapped",
    "h0_first_layer_only",
    "hn_cn_swapped",
    "packed_ignored",
    "hn_from_last_step",
    "projection_skipped",
    "zero_state_device",
    "zero_state_dtype",
    "state_carried_over",
}
PROBED = {h.name for h in diagnosis.library() if h.kind == "probe"}
# Bugs that a forward run on the diagnostic cases shows (probes need their own re-runs).
IN_LIBRARY = sorted(name for name, entry in ZOO.items() if entry.hypothesis not in (None, *PROBED))
OUTSIDE_LIBRARY = sorted(name for name, entry in ZOO.items() if entry.hypothesis is None)


@cache
def first_failure(name: str) -> diagnosis.Trial | None:
    """The zoo entry's first failing diagnostic case, diagnosed (None: it passes them all)."""
    impl = ZOO[name].implementation
    for cell in sorted(impl.capabilities.cells):
        for case in diagnosis.diagnostic_cases(cell):
            result = diagnosis.try_case(impl, case)
            if result.outcome in ("failed", "raised"):
                return result
    return None


def named(name: str) -> str | None:
    result = first_failure(name)
    return result.verdict.cause if result and result.verdict else None


def test_library_holds_the_agreed_names():
    assert LIBRARY_NAMES <= {hypothesis.name for hypothesis in diagnosis.library()}


def test_the_library_is_not_loaded_as_a_cell_spec():
    assert diagnosis.HYPOTHESES_PATH not in shipped_spec_paths()


def test_every_hypothesis_predicts_and_shows_on_some_shipped_cell():
    """Every rewritten cell generates and runs; every name differs from the gold somewhere."""
    shown = set()
    for spec in shipped_specs().values():
        for cell in spec.cells.values():
            for case in diagnosis.diagnostic_cases(cell.name):
                canonical = diagnosis.canonical_inputs(case, make_inputs(case))
                gold = diagnosis.predict(diagnosis.Model(cell), case.config, *canonical)
                tol = tolerance(case.dtype, case.steps, case.config.num_layers)
                for explanation in diagnosis.explanations(case):
                    predicted = diagnosis.predict(explanation.model, case.config, *canonical)
                    assert all(np.isfinite(a).all() for a in predicted.arrays()), explanation
                    if diagnosis.distance(predicted, gold, tol)[0] > 1:
                        shown.add(explanation.name.partition(":")[0])
    library = {h.name.partition(":")[0] for h in diagnosis.library() if h.kind != "probe"}
    assert shown == library


@pytest.mark.parametrize(
    "case",
    [
        Case(RNNConfig("lstm", num_layers=2, bidirectional=True, batch_first=True), steps=4),
        Case(RNNConfig("gru", bidirectional=True), steps=6, lengths=(6, 2, 4)),
        Case(RNNConfig("lstm", proj_size=2), steps=3, batch=None, given_state=False),
        Case(RNNConfig("elman", bias=False), steps=3, batch=2),
    ],
    ids=lambda case: case.id(),
)
def test_the_canonical_model_is_the_gold(case):
    inputs = make_inputs(case)
    gold = harness.gold(case, inputs)
    canonical = diagnosis.canonical_inputs(case, inputs)
    got = diagnosis.predict(diagnosis.Model(case.config.resolve()), case.config, *canonical)
    expected = diagnosis.time_major(case, gold.output, gold.states)
    for a, b in zip(got.arrays(), expected.arrays(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", IN_LIBRARY)
def test_zoo_bug_in_the_library_is_named(name):
    result = first_failure(name)
    assert result is not None and result.outcome == "failed", f"{name}: {result}"
    assert named(name) == ZOO[name].hypothesis, str(result)


def test_zoo_bugs_outside_the_library_are_not_guessed():
    results = {name: first_failure(name) for name in OUTSIDE_LIBRARY}
    verdicts = {name: r.verdict for name, r in results.items() if r and r.verdict}
    assert verdicts, "no zoo entry outside the library fails forward parity"
    for name, verdict in verdicts.items():
        assert verdict.hypothesis is None and diagnosis.NO_MATCH in str(verdict), name


@pytest.mark.parametrize("impl", [torch_nn(), scratch.correct], ids=["torch", "scratch"])
def test_a_correct_network_passes_every_diagnostic_case(impl):
    for case in diagnosis.diagnostic_cases("lstm"):
        assert diagnosis.try_case(impl, case).outcome == "passed"


def test_parity_failure_carries_the_verdict_as_data():
    impl = ZOO["lstm_gate_order_igfo"].implementation
    case = Case(RNNConfig("lstm", input_size=5, hidden_size=7), steps=6, batch=3)
    with pytest.raises(CheckFailure) as caught:
        parity.check_forward(impl, case, ignore)
    assert "diagnosis" not in str(caught.value)  # the message stays one line
    verdict = caught.value.details["diagnosis"]
    assert isinstance(verdict, diagnosis.Verdict)
    assert str(verdict).startswith("diverges at t=0, layer 0, forward, h;")
    assert re.search(
        r"matches gate_permutation:i,g,f,o to \de-1\d: your LSTM reads its stacked gate blocks "
        r"in the order \(i, g, f, o\), not \(i, f, g, o\); fix: split W_ih, W_hh, b_ih and "
        r"b_hh into gates in the order \(i, f, g, o\)$",
        str(verdict),
    ), str(verdict)
    details = verdict.as_dict()
    assert (details["cause"], details["cell"]) == ("gate_permutation:i,g,f,o", "lstm")
    assert details["divergence"]["step"] == 0


# -- precision: a candidate computing in float32 on float64 cases -----------------------------
def _parity_verdict(impl: Implementation, case: Case) -> diagnosis.Verdict:
    with pytest.raises(CheckFailure) as caught:
        parity.check_forward(impl, case, ignore)
    return caught.value.details["diagnosis"]


def test_float32_computation_is_named_not_a_wrong_hypothesis():
    impl = scratch.implementation("float32", scratch.Bugs(float32_compute=True))
    verdict = _parity_verdict(impl, Case(RNNConfig("lstm", input_size=5, hidden_size=7)))
    assert (verdict.hypothesis, verdict.cause) == (None, "computes_in_float32")
    assert "your network computes in float32, not float64; fix: compute in the input's" in str(
        verdict
    )


def test_hypotheses_are_matched_at_the_precision_the_candidate_computes_in():
    """A float32 GRU with the reset gate before the matmul, run on a float64 case."""
    bugs = scratch.Bugs(float32_compute=True, reset_before=True)
    impl = scratch.implementation("float32 reset_before", bugs)
    verdict = _parity_verdict(impl, Case(RNNConfig("gru", input_size=5, hidden_size=7)))
    assert (verdict.hypothesis, verdict.precision) == ("gru_reset_before", "float32")
    assert "(matched at float32's tolerance)" in str(verdict)
    assert "declare cells={'gru:reset_before'}" in str(verdict)


def test_a_float32_case_is_matched_at_float32():
    impl = ZOO["gru_reset_before"].implementation
    case = Case(RNNConfig("gru", input_size=5, hidden_size=7), dtype="float32")
    verdict = _parity_verdict(impl, case)
    assert (verdict.hypothesis, verdict.precision) == ("gru_reset_before", None)


# -- every category --------------------------------------------------------------------------
def test_a_robustness_failure_of_a_correct_forward_says_so():
    """The check fails, but the forward run on its case alone is right."""
    impl = ZOO["nondeterministic"].implementation
    case = robustness.determinism_cases(["elman"])[0]
    with pytest.raises(CheckFailure) as caught:
        robustness.check_deterministic(impl, case, ignore)
    verdict = caught.value.details["diagnosis"]
    assert verdict.cause is None and str(verdict) == failures.MATCHES_GOLD


def test_a_diagnosis_that_breaks_does_not_hide_the_failure():
    failure = CheckFailure("output wrong")
    diagnosis.attach(failure, lambda: 1 / 0)
    assert (
        str(failure.details["diagnosis"]) == "diagnosis failed: ZeroDivisionError: division by zero"
    )


def _scaled_gate(module, gate_rows):
    grads = named_parameter_gradients(module)
    changed = dict(grads)
    for name, rows in gate_rows.items():
        changed[name] = grads[name].clone()
        changed[name][rows] *= 2
    return changed


def test_gradients_are_localised_to_every_wrong_parameter_and_gate():
    base = torch_nn()
    hidden = 7
    forget = slice(hidden, 2 * hidden)  # LSTM gates (i, f, g, o)
    wrong = {"weight_hh_l0": forget, "bias_ih_l1_reverse": slice(3 * hidden, 4 * hidden)}
    impl = Implementation(
        "wrong grads",
        base.factory,
        Capabilities(),
        gradients=lambda module: _scaled_gate(module, wrong),
    )
    case = gradients.cases(["lstm"])[0].replace(
        config=RNNConfig("lstm", 5, hidden, num_layers=2, bidirectional=True)
    )
    with pytest.raises(CheckFailure) as caught:
        gradients.check_gradients(impl, case, ignore)
    verdict = caught.value.details["diagnosis"]
    assert isinstance(verdict, diagnosis.GradientVerdict)
    assert [str(w) for w in verdict.wrong] == [
        "weight_hh_l0 (gate f)",
        "bias_ih_l1_reverse (gate o)",
    ]
    assert verdict.cause == "wrong gradient of weight_hh, bias_ih"
    assert "input" in verdict.right and "weight_ih_l0" in verdict.right


def test_likely_causes_per_cell():
    diagnoses = [
        {"cell": "gru", "cause": "gru_reset_before", "fix": "declare cells={'gru:reset_before'}"},
        {"cell": "gru", "cause": "gru_reset_before", "fix": "declare cells={'gru:reset_before'}"},
        {"cell": "gru", "cause": None},
        {"cell": "lstm", "cause": "computes_in_float32", "fix": ""},
    ]
    assert diagnosis.likely_causes(diagnoses) == [
        "gru: gru_reset_before (2x) - fix: declare cells={'gru:reset_before'}; "
        "1 failure(s) the library does not explain",
        "lstm: computes_in_float32 (1x)",
    ]


# -- localisation: candidates broken in one place --------------------------------------------
def _torch_with(load=None, call=None) -> Implementation:
    base = torch_nn()
    return Implementation(
        "broken",
        base.factory,
        Capabilities(),
        load or load_state_dict_weights,
        call=call or base.call,
    )


def _permute_reverse_only(module, weights):
    changed = {
        name: torch.cat(value.chunk(4)[::-1]) if name.endswith("_reverse") else value
        for name, value in weights.items()
    }
    load_state_dict_weights(module, changed)


def _no_bias_in_layer_0(module, weights):
    changed = {
        name: value * 0 if name == "bias_ih_l0" else value for name, value in weights.items()
    }
    load_state_dict_weights(module, changed)


def _verdict(impl: Implementation, case: Case) -> diagnosis.Verdict:
    result = diagnosis.try_case(impl, case)
    assert result.outcome == "failed" and result.verdict is not None, str(result)
    return result.verdict


def test_localises_a_reverse_direction_bug_at_its_first_step():
    case = Case(RNNConfig("lstm", bidirectional=True), steps=6, batch=3)
    verdict = _verdict(_torch_with(load=_permute_reverse_only), case)
    assert str(verdict.divergence).startswith("diverges at t=5, layer 0, reverse, h;")
    assert verdict.hypothesis is None and diagnosis.NO_MATCH in str(verdict)


def test_one_step_updates_show_an_ignored_initial_state():
    """Only the first update is wrong: from its own state, every later step is right."""
    case = Case(RNNConfig("gru"), steps=6, batch=3)
    impl = _torch_with(call=lambda module, x, hx: module(x))
    divergence = _verdict(impl, case).divergence
    assert divergence is not None
    assert (divergence.step, divergence.wrong_updates) == (0, (0,))


def test_localises_a_lower_layer_from_its_final_state():
    case = Case(RNNConfig("gru", num_layers=2), steps=6, batch=3)
    verdict = _verdict(_torch_with(load=_no_bias_in_layer_0), case)
    assert str(verdict.divergence) == (
        "diverges at layer 0, forward, h (seen in h_n; the output first differs at t=0)"
    )


def test_a_final_state_only_bug_is_seen_in_the_state():
    result = first_failure("hn_direction_major")
    assert result is not None and result.verdict is not None
    assert "(seen in h_n; the output matches)" in str(result.verdict)


# -- the command line ----------------------------------------------------------------------
gate_order_igfo = ZOO["lstm_gate_order_igfo"].implementation


def test_cli_diagnose_prints_the_verdict(capsys):
    status = cli.main(
        ["diagnose", "--impl", "tests.test_diagnosis:gate_order_igfo", "--cell", "lstm"]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert "lstm I=5 H=7 T=6 B=3 dtype=float64: failed" in out
    assert "diagnosis: diverges at t=0, layer 0, forward, h;" in out
    assert out.count("matches gate_permutation:i,g,f,o") == len(diagnosis.diagnostic_cases("lstm"))


def test_cli_diagnose_one_config(capsys):
    argv = ["diagnose", "--impl", "torch", "--cell", "gru", "--config", "num_layers=2"]
    status = cli.main([*argv, "bidirectional=true", "lengths=5,3", "batch=2"])
    out = capsys.readouterr().out
    assert status == 0
    assert (
        out
        == "gru I=5 H=7 layers=2 bidirectional T=5 B=2 packed lengths=[5, 3] dtype=float64: passed\n"
    )


def test_cli_diagnose_rejects_an_unknown_key(capsys):
    assert cli.main(["diagnose", "--impl", "torch", "--config", "colour=red"]) == 2
    assert "--config 'colour=red': expected KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["seed=-1"], "seed non-negative"),
        (["steps=0"], "steps and batch must be positive"),
        (["batch=0"], "steps and batch must be positive"),
    ],
)
def test_cli_diagnose_rejects_a_case_it_cannot_judge(capsys, options, message):
    """Before: a NumPy traceback, the candidate 'raising' and 'passed'."""
    assert cli.main(["diagnose", "--impl", "torch", "--config", *options]) == 2
    assert message in capsys.readouterr().err


def test_cli_diagnose_judges_a_net_with_dropout_in_eval_mode(capsys):
    """Before: torch.nn itself failed, its dropout running in training mode."""
    options = ["num_layers=2", "dropout=0.5"]
    assert cli.main(["diagnose", "--impl", "torch", "--cell", "gru", "--config", *options]) == 0
    assert capsys.readouterr().out.endswith("dtype=float64: passed\n")


def test_check_failure_refuses_the_old_keyword():
    with pytest.raises(TypeError, match="kind=..., not category="):
        CheckFailure("wrong", category="shape")


reset_before = ZOO["gru_reset_before"].implementation


def test_cli_diagnose_as_another_cell(capsys):
    """A GRU declared 'gru' that computes reset_before passes when judged as that variant."""
    argv = ["diagnose", "--impl", "tests.test_diagnosis:reset_before", "--cell", "gru"]
    assert cli.main(argv) == 1
    assert "declare cells={'gru:reset_before'}" in capsys.readouterr().out
    assert cli.main([*argv, "--as-cell", "gru:reset_before"]) == 0
    out = capsys.readouterr().out
    assert out.count(": passed") == len(diagnosis.diagnostic_cases("gru")), out


def test_cli_diagnose_rejects_an_as_cell_with_other_parameters(capsys):
    argv = ["diagnose", "--impl", "torch", "--cell", "gru", "--as-cell", "lstm"]
    assert cli.main(argv) == 2
    assert "--as-cell lstm: its parameters differ from gru's" in capsys.readouterr().err


def test_cli_diagnose_builds_any_case(capsys):
    argv = ["diagnose", "--impl", "torch", "--cell", "lstm", "--config", "batch=none"]
    status = cli.main([*argv, "given_state=false", "dtype=float32", "device=cpu", "num_layers=2"])
    assert (status, capsys.readouterr().out) == (
        0,
        "lstm I=5 H=7 layers=2 T=6 unbatched hx=None dtype=float32: passed\n",
    )
    assert cli.main(["diagnose", "--impl", "torch", "--config", "unbatched=true"]) == 0
    assert "unbatched" in capsys.readouterr().out


def test_cli_diagnose_fails_when_nothing_ran(capsys):
    assert cli.main(["diagnose", "--impl", "torch", "--cell", "gru:reset_before"]) == 2
    assert "nothing ran: torch declares none of these cases" in capsys.readouterr().err


# -- a candidate written like seed 000's DummyRNN -------------------------------------------
class DummyRNN:
    """NumPy, one layer, time-major: a linear recurrence, tanh only on what it reads out."""

    def __init__(self, config: RNNConfig) -> None:
        self.hidden_size = config.hidden_size

    def load(self, weights: dict) -> None:
        self.Wxi, self.Whi = weights["weight_ih_l0"], weights["weight_hh_l0"].T
        self.b1 = weights["bias_ih_l0"] + weights["bias_hh_l0"]

    def forward(self, input_data: np.ndarray, hx: np.ndarray | None) -> tuple:
        hidden_in = np.zeros((input_data.shape[1], self.hidden_size)) if hx is None else hx[0]
        memory = []
        for input_t in input_data:
            hidden_activation_t = hidden_in @ self.Whi + input_t @ self.Wxi.T + self.b1
            memory.append(np.tanh(hidden_activation_t))
            hidden_in = hidden_activation_t
        return np.array(memory), hidden_in[None]


dummy_rnn = Implementation(
    "dummy_rnn",
    lambda config, device, dtype: DummyRNN(config),
    Capabilities(
        cells=frozenset({"elman"}),
        max_layers=1,
        bidirectional=False,
        no_bias=False,
        batch_first=False,
        proj_size=False,
        unbatched=False,
    ),
    load_weights=lambda model, weights: model.load(weights),
    call=lambda model, x, hx: model.forward(x, hx),
    framework="numpy",
)


def test_seed_000s_dummy_rnn_is_named_with_its_fix():
    verdict = _parity_verdict(dummy_rnn, Case(RNNConfig("elman", input_size=5, hidden_size=7)))
    assert verdict.cause == "tanh_read_out"
    assert str(verdict).endswith(
        "your Elman RNN keeps a linear recurrence, h' = W_ih x + b_ih + W_hh h + b_hh, and "
        "applies tanh only to the output it reads out; fix: apply tanh inside the recurrence, "
        "h' = tanh(W_ih x + b_ih + W_hh h + b_hh), and return that h' as the output and the state"
    )


def test_the_diagnosis_sits_below_the_checks():
    """rnnspec.diagnosis imports neither rnnspec.checks nor conformance (no cycle with the
    checks that call it)."""
    package = Path(diagnosis.__file__).parent
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    above = {name for name in imported if name.startswith(("rnnspec.checks", "conformance"))}
    assert not above


# -- the plugin renders verdicts ---------------------------------------------------------------
RAISING = """
import torch
from dataclasses import replace
from rnnspec.protocol import Implementation


def call(module, x, hx):
    raise RuntimeError("planted failure")


raising = replace(Implementation.from_module(torch.nn.GRU, name="raising", cells={"gru"}), call=call)
"""
ONE_CASE = (
    "-m",
    "parity",
    "-k",
    "gru- and not no-bias and not batch_first and not hxNone and not square and not large",
)
SUITE = str(Path(conformance.__file__).resolve().parent)


def test_a_failure_report_is_the_message_the_verdict_and_the_likely_cause(pytester):
    argv = [SUITE, "--impl", "tests.test_diagnosis:reset_before", *ONE_CASE]
    result = pytester.runpytest(*argv, "-p", "no:cacheprovider", "--conformance-report", "out")
    output = result.stdout.str()
    assert "implementation = " not in output and "case = Case(" not in output
    result.stdout.fnmatch_lines(
        [
            "output[[]*, but should be * [[]gru I=5 H=7 T=6 B=3 dtype=float64[]]",
            "*- rnnspec diagnosis -*",
            "diverges at t=0, * matches gru_reset_before to *: your GRU applies the reset gate *",
        ]
    )
    result.stdout.fnmatch_lines(
        ["likely causes, by cell (from the diagnoses):", "  gru: gru_reset_before (*x) - fix: *"]
    )
    failed = [
        r for r in json.loads((pytester.path / "out.json").read_text())["results"] if r["diagnosis"]
    ]
    assert failed and {r["diagnosis"]["cause"] for r in failed} == {"gru_reset_before"}


def test_a_raising_candidate_shows_its_own_traceback(pytester):
    pytester.makepyfile(candidates=RAISING)
    pytester.syspathinsert()
    result = pytester.runpytest(
        SUITE, "--impl", "candidates:raising", *ONE_CASE, "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(
        [
            "raising: forward raised RuntimeError: planted failure [[]gru *",
            "*- candidate traceback -*",
            '*candidates.py", line *, in call',
            "RuntimeError: planted failure",
        ]
    )
    assert "implementation = " not in result.stdout.str()


# -- a JAX LSTM computing in float32 (JAX's default) on float64 cases -------------------------
class JaxLSTM:
    """One layer, time-major, in jax.numpy: float32 whatever it is given."""

    def __init__(self, jnp):
        self.jnp = jnp

    def load(self, weights: dict) -> None:
        jnp = self.jnp
        self.w_ih, self.w_hh = (
            jnp.asarray(weights["weight_ih_l0"]),
            jnp.asarray(weights["weight_hh_l0"]),
        )
        self.b = jnp.asarray(weights["bias_ih_l0"] + weights["bias_hh_l0"])

    def __call__(self, x: np.ndarray, hx: tuple) -> tuple:
        jnp = self.jnp
        h, c = (jnp.asarray(state[0]) for state in hx)
        outputs = []
        for x_t in jnp.asarray(x):
            i, f, g, o = jnp.split(x_t @ self.w_ih.T + h @ self.w_hh.T + self.b, 4, axis=-1)
            c = jax_sigmoid(jnp, f) * c + jax_sigmoid(jnp, i) * jnp.tanh(g)
            h = jax_sigmoid(jnp, o) * jnp.tanh(c)
            outputs.append(h)
        back = [np.asarray(value, dtype=x.dtype) for value in (jnp.stack(outputs), h, c)]
        return back[0], (back[1][None], back[2][None])


def jax_sigmoid(jnp, value):
    return 1 / (1 + jnp.exp(-value))


def test_a_jax_lstm_in_float32_is_told_so_not_hard_sigmoid():
    jnp = pytest.importorskip("jax.numpy")
    impl = Implementation(
        "jax-lstm",
        lambda config, device, dtype: JaxLSTM(jnp),
        Capabilities(cells=frozenset({"lstm"}), max_layers=1, bidirectional=False),
        load_weights=lambda model, weights: model.load(weights),
        call=lambda model, x, hx: model(x, hx),
        framework="numpy",
    )
    verdict = _parity_verdict(impl, Case(RNNConfig("lstm", input_size=5, hidden_size=7)))
    assert verdict.cause == "computes_in_float32", str(verdict)
    assert "your network computes in float32, not float64" in str(verdict)


state_float32 = ZOO["state_float32"].implementation


def test_cli_diagnose_probes_a_run_that_raises(capsys):
    argv = ["diagnose", "--impl", "tests.test_diagnosis:state_float32", "--cell", "lstm"]
    assert cli.main([*argv, "--config", "given_state=false"]) == 1
    out = capsys.readouterr().out
    assert "lstm I=5 H=7 T=6 B=3 hx=None dtype=float64: raised" in out
    assert "matches zero_state_dtype: your LSTM makes its zero state in a hard-coded dtype" in out


# -- the command runs inside the declared envelope ------------------------------------------
def test_cli_diagnose_fits_its_cases_to_a_batch_first_only_candidate(capsys):
    """A one-layer, batch-first, no-h0 Elman loop asked without batch_first=true gets
    batch-first cases without h0, not a skip (or a failure) of every case."""
    argv = ["diagnose", "--impl", "tests.seeds_style.cell_loop:implementation"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "elman I=5 H=7 batch_first T=6 B=3 hx=None dtype=float64: passed\n" in out
    assert "packed sequences not supported" in out  # the packed case stays outside
    assert cli.main([*argv, "--config", "steps=4"]) == 0
    assert capsys.readouterr().out == (
        "elman I=5 H=7 batch_first T=4 B=3 hx=None dtype=float64: passed\n"
    )


reset_before_in_float32 = scratch.implementation(
    "float32 reset_before, declared",
    scratch.Bugs(float32_compute=True, reset_before=True),
    cells={"gru"},
    precision="float32",
)


def test_cli_diagnose_matches_from_the_declared_precision(capsys):
    """A GRU that declares it computes in float32 is judged, and its hypotheses matched, at
    float32 from the start: the verdict names the bug, not a precision lower than the case's."""
    argv = ["diagnose", "--impl", "tests.test_diagnosis:reset_before_in_float32"]
    assert cli.main([*argv, "--config", "steps=6"]) == 1
    out = capsys.readouterr().out
    assert "gru I=5 H=7 T=6 B=3 dtype=float64 precision=float32: failed" in out
    assert "matches gru_reset_before" in out
    assert "matched at float32's tolerance" not in out


def test_a_check_matches_from_the_declared_precision():
    declared = Capabilities(precision="float32")
    case = fit(Case(RNNConfig("gru", input_size=5, hidden_size=7)), declared)
    verdict = _parity_verdict(reset_before_in_float32, case)
    assert (verdict.hypothesis, verdict.precision) == ("gru_reset_before", None)
