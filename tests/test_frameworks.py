"""The Framework seam: lookup, effective capabilities, conversions, and JAX end to end.

JAX, Flax and Equinox are optional: their tests skip when the library is missing.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from rnnspec import frameworks, listing, registry
from rnnspec.cases import make_case
from rnnspec.checks import device, dtype, gradients, ignore, parity, robustness, shapes
from rnnspec.compare import CheckFailure
from rnnspec.errors import NotInstalled
from rnnspec.harness import Candidate, Unsupported, make_inputs, require
from rnnspec.protocol import Capabilities, Implementation
from rnnspec.speed import numpy_reference

SIZES = dict(steps=5, batch=3, input_size=5, hidden_size=7)


def _case(cell: str = "lstm", layers: int = 2, bidirectional: bool = True, **given):
    return make_case(cell, layers, bidirectional, **{**SIZES, **given})


# --- lookup and capabilities ------------------------------------------------------------


def test_frameworks_are_looked_up_by_name() -> None:
    assert {frameworks.get(name).name for name in frameworks.NAMES} == {"torch", "numpy", "jax"}
    assert frameworks.get("torch") is frameworks.get("torch")
    with pytest.raises(ValueError, match="framework must be one of jax, numpy, torch"):
        frameworks.get("tensorflow")


def test_an_unknown_framework_fails_at_registration() -> None:
    with pytest.raises(ValueError, match="got 'tensorflow'"):
        Implementation("x", lambda config, device, dtype: None, framework="tensorflow")


def test_numpy_capabilities_are_derived_not_mutated() -> None:
    impl = numpy_reference()
    assert impl.capabilities.dtypes == Capabilities().dtypes  # what it declared, untouched
    effective = impl.effective_capabilities
    assert (effective.gradients, effective.packed) == (False, False)
    assert effective.dtypes == {"float64", "float32"}
    assert effective.devices == {"cpu"}
    with pytest.raises(Unsupported, match="gradients not supported"):
        require(impl, _case(), gradients=True)


def test_jax_capabilities_drop_packing_and_meta() -> None:
    impl = Implementation("x", lambda config, device, dtype: None, framework="jax")
    effective = impl.effective_capabilities
    assert not effective.packed and effective.gradients
    assert effective.devices == {"cpu", "cuda"}
    assert effective.dtypes == Capabilities().dtypes


def test_torch_candidate_arrays_are_tensors_on_the_case_device_and_dtype() -> None:
    from rnnspec.implementations import torch_nn

    case = _case(dtype="float32")
    candidate = Candidate(torch_nn(), case, make_inputs(case))
    x = candidate.tensor(np.ones((2, 3)), requires_grad=True)
    assert (x.dtype, x.device.type, x.requires_grad) == (torch.float32, "cpu", True)
    assert candidate.framework.device_of(x) == "cpu"
    copy = candidate.framework.copy(x)
    x.data.add_(1)
    assert float(copy.detach().sum()) == 6.0


def test_numpy_candidate_arrays_are_host_arrays_in_the_case_dtype() -> None:
    case = _case(dtype="float32", layers=1, bidirectional=False)
    candidate = Candidate(numpy_reference(), case, make_inputs(case))
    assert candidate.tensor(np.ones(3)).dtype == np.float32
    assert candidate.framework.array_type() is np.ndarray
    with pytest.raises(NotImplementedError, match="no automatic differentiation"):
        candidate.framework.vjp(candidate)


# --- not installed --------------------------------------------------------------------------


@pytest.fixture
def without_flax(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import flax.linen`` and ``import flax.nnx`` fail as if flax were not installed."""
    for module in ("flax", "flax.linen", "flax.nnx"):
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.usefixtures("without_flax")
def test_a_missing_library_is_listed_with_its_pip_extra() -> None:
    entries = {entry.name: entry for entry in registry.discover()}
    assert not entries["flax"].installed
    assert entries["flax"].error.startswith("not installed: pip install rnnspec[flax] (")
    text = listing.render(list(entries.values()))
    assert "flax  (rnnspec.adapters.flax_cells:linen)\n  not installed: pip install " in text
    assert "BROKEN" not in text


@pytest.mark.usefixtures("without_flax")
def test_impl_of_a_missing_library_says_how_to_install_it() -> None:
    with pytest.raises(NotInstalled, match=r"^flax: not installed: pip install rnnspec\[flax\] "):
        registry.load("flax")


# --- JAX ------------------------------------------------------------------------------------


@pytest.fixture
def jax_x64():
    """JAX's x64 switch as the test found it, restored after."""
    jax = pytest.importorskip("jax")
    framework = frameworks.get("jax")
    saved, user = jax.config.read("jax_enable_x64"), framework.user_x64
    yield jax
    jax.config.update("jax_enable_x64", saved)
    framework.user_x64 = user


def test_jax_x64_is_on_for_float64_cases_and_as_found_otherwise(jax_x64) -> None:
    from tests.jax_scan_rnn import implementation

    framework = frameworks.get("jax")
    framework.user_x64 = False
    for dtype_name, x64 in (("float64", True), ("float32", False), ("float64", True)):
        case = _case(dtype=dtype_name)
        candidate = Candidate(implementation, case, make_inputs(case))
        assert jax_x64.config.read("jax_enable_x64") is x64
        assert str(candidate.tensor(np.ones(2)).dtype) == dtype_name
        assert str(candidate.given_weights["weight_ih_l0"].dtype) == dtype_name


def test_jax_arrays_live_on_the_cpu_and_cuda_is_a_skip_without_a_gpu(jax_x64) -> None:
    framework = frameworks.get("jax")
    array = framework.array(np.ones(2), framework.device("cpu"), np.float32, "float32", False)
    assert isinstance(array, framework.array_type())
    assert framework.device_of(array) == "cpu"
    if not any(device.platform == "gpu" for device in jax_x64.devices()):
        with pytest.raises(Unsupported, match="cuda not available to JAX"):
            framework.require_device("cuda")


@pytest.mark.parametrize(
    "case",
    [
        _case("lstm"),
        _case("gru", 1, False, dtype="float32", given_state=False),
        _case("elman:relu", 1, True, dtype="float32", batch_first=True),
    ],
    ids=lambda case: case.label(),
)
def test_a_jax_candidate_gets_gradient_checks(jax_x64, case) -> None:
    from tests.jax_scan_rnn import implementation

    parity.check_forward(implementation, case, ignore)
    gradients.check_gradients(implementation, case, ignore)


def test_jax_gradient_checks_catch_a_detached_bias(jax_x64) -> None:
    from tests.jax_scan_rnn import detached_bias

    case = _case("gru")
    parity.check_forward(detached_bias, case, ignore)  # the forward is right
    with pytest.raises(CheckFailure, match=r"grad bias_hh_l0\[\d+\]=0, but should be"):
        gradients.check_gradients(detached_bias, case, ignore)


def test_jax_candidate_returning_numpy_is_the_wrong_type(jax_x64) -> None:
    from dataclasses import replace

    from tests.jax_scan_rnn import implementation

    def host_call(network, x, hx):
        output, state = network(x, hx)
        return np.asarray(output), state

    wrong = replace(implementation, call=host_call)
    with pytest.raises(CheckFailure, match="output is ndarray, but should be jax.Array"):
        shapes.check_shapes(wrong, _case(), ignore)


def test_jax_candidate_passes_the_other_categories(jax_x64) -> None:
    from tests.jax_scan_rnn import implementation

    robustness.check_chunked(
        implementation, _case("lstm", 2, False, batch_first=True, steps=6), ignore
    )
    robustness.check_no_mutation(implementation, _case("gru", batch_first=True), ignore)
    robustness.check_rejects_bad_state(implementation, _case("lstm"), ignore)
    robustness.check_unbatched(implementation, _case("gru", batch=None), ignore)
    dtype.check_dtype(implementation, _case("lstm", dtype="bfloat16"), ignore)
    device.check_zero_state(implementation, _case("elman", given_state=False), ignore)
    with pytest.raises(Unsupported, match="packed sequences not supported"):
        robustness.check_packed(implementation, _case(lengths=(3, 5, 1)), ignore)
    with pytest.raises(Unsupported, match="device meta not supported"):
        device.check_meta(implementation, _case(device="meta"), ignore)


# --- Flax and Equinox built-ins ---------------------------------------------------------------


def _flax_tree(module, *shapes):
    """The parameter tree (names and shapes) the library's own ``init`` makes."""
    import jax

    variables = module.init(jax.random.key(0), *[np.zeros(shape, np.float32) for shape in shapes])
    return jax.tree_util.tree_map(np.shape, variables["params"])


@pytest.mark.parametrize("kind", ["elman", "gru", "lstm"])
def test_linen_mapping_has_the_names_and_shapes_of_the_library(jax_x64, kind: str) -> None:
    pytest.importorskip("flax")
    import flax.linen as nn
    import jax

    from rnnspec.adapters.flax_cells import CLASSES, linen_params
    from rnnspec.adapters.jax_network import gates
    from rnnspec.weights import random_weights

    config = _case(kind, 1, False).config
    weights = {name: value.astype(np.float32) for name, value in random_weights(config, 0).items()}
    mapped = linen_params(kind, gates(config, weights, 0, 0))
    cell = getattr(nn, "LSTMCell" if kind == "lstm" else CLASSES[kind])(features=7)
    rnn = nn.RNN(cell, time_major=True)
    assert jax.tree_util.tree_map(np.shape, {"cell": mapped}) == _flax_tree(rnn, (5, 3, 5))


BUILT_INS = {
    "flax": ("flax", ["elman", "elman:relu", "gru", "lstm"]),
    "flax-optimized": ("flax", ["lstm"]),
    "flax-nnx": ("flax", ["elman", "elman:relu", "lstm"]),
    "flax-nnx-optimized": ("flax", ["lstm"]),
    "equinox": ("equinox", ["gru", "lstm"]),
}


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_jax_library_built_ins_pass_forward_and_gradients(jax_x64, name: str) -> None:
    library, cells = BUILT_INS[name]
    pytest.importorskip(library)
    impl = registry.load(name)
    for index, cell in enumerate(cells):  # alternately stacked in float64 and one float32 layer
        stacked = index % 2 == 0
        case = _case(cell, batch_first=True) if stacked else _case(cell, 1, False, dtype="float32")
        parity.check_forward(impl, case, ignore)
        gradients.check_gradients(impl, case, ignore)


def test_flax_nnx_gru_lacks_the_hidden_bias_of_n(jax_x64) -> None:
    """flax.nnx's GRUCell has no b_hn (flax#5594): right without biases, wrong with them,
    and the diagnosis names it."""
    pytest.importorskip("flax")
    impl = registry.load("flax-nnx")
    parity.check_forward(impl, _case("gru", bias=False), ignore)
    with pytest.raises(CheckFailure, match="but should be") as caught:
        parity.check_forward(impl, _case("gru"), ignore)
    assert caught.value.details["diagnosis"].hypothesis == "missing_b_hn"
