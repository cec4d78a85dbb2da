"""The onnxruntime built-in and ONNX files as --impl: exported torch.nn networks pass, a
corrupted copy fails parity with the gate permutation named."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance
from rnnspec import fixed, registry
from rnnspec.cases import make_case
from rnnspec.checks import ignore, layout, parity, robustness
from rnnspec.compare import CheckFailure
from rnnspec.errors import ImplementationError
from rnnspec.protocol import ALL_CELLS

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest_plugins = ["pytester"]

SUITE = str(Path(conformance.__file__).resolve().parent)
SIZES = dict(input_size=5, hidden_size=7, steps=6, batch=3, dtype="float32")


@pytest.mark.parametrize("cell", sorted(ALL_CELLS))
def test_onnxruntime_passes_parity_layout_and_packing_in_float32(cell: str) -> None:
    impl = registry.load("onnxruntime")
    for bidirectional, batch_first, bias in ((True, True, True), (False, False, False)):
        case = make_case(cell, 2, bidirectional, batch_first=batch_first, bias=bias, **SIZES)
        parity.check_forward(impl, case, ignore)
        layout.check_layout(impl, case, ignore)
        parity.check_forward(impl, case.replace(given_state=False), ignore)
    packed = make_case(cell, 1, True, lengths=(3, 6, 1), **SIZES)
    robustness.check_packed(impl, packed, ignore)


def test_onnxruntime_rejects_layout_1_so_the_adapter_transposes() -> None:
    from rnnspec.adapters.onnxruntime import layer_model, session
    from rnnspec.layouts import to_onnx

    case = make_case("gru", input_size=5, hidden_size=7)
    model = layer_model(
        case.config,
        to_onnx(parity.make_inputs(case).weights, case.config, 0),
        lengths=False,
        states=False,
    )
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("layout", 1))
    with pytest.raises(Exception, match="layout == 1"):
        session(model)


def export(module: torch.nn.Module, path: Path, batch_first: bool) -> Path:
    """``torch.onnx.export`` of a torch.nn RNN with (input, h0[, c0]) inputs, dynamic T and B,
    and its source network beside it."""
    lstm = isinstance(module, torch.nn.LSTM)
    layers = module.num_layers * (2 if module.bidirectional else 1)
    x = torch.randn(3, 6, 5) if batch_first else torch.randn(6, 3, 5)
    state = torch.randn(layers, 3, module.hidden_size)
    hx = (state, state.clone()) if lstm else state
    states = ["h0", "c0"] if lstm else ["h0"]
    outputs = ["output", "h_n", "c_n"] if lstm else ["output", "h_n"]
    axes = {"input": {0: "d0", 1: "d1"}, **{name: {1: "batch"} for name in states}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (x, hx),
            str(path),
            input_names=["input", *states],
            output_names=outputs,
            dynamic_axes=axes,
            dynamo=False,
        )
    fixed.save_source(fixed.source_path(path), "lstm" if lstm else "gru", module.state_dict())
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("onnx")
    return {
        "gru": export(
            torch.nn.GRU(5, 7, num_layers=2, bidirectional=True), folder / "gru.onnx", False
        ),
        "lstm": export(
            torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
            folder / "lstm.onnx",
            True,
        ),
    }


def corrupt(path: Path, target: Path) -> Path:
    """A copy whose LSTM nodes have ONNX gate blocks o and f swapped in W, R and B."""
    model = onnx.load(str(path))
    initializers = {init.name: init for init in model.graph.initializer}
    for node in (node for node in model.graph.node if node.op_type == "LSTM"):
        for position, blocks in ((1, 4), (2, 4), (3, 8)):
            init = initializers[node.input[position]]
            parts = np.split(onnx.numpy_helper.to_array(init), blocks, axis=1)
            order = [0, 2, 1, 3] if blocks == 4 else [0, 2, 1, 3, 4, 6, 5, 7]
            swapped = np.concatenate([parts[k] for k in order], axis=1)
            init.CopyFrom(onnx.numpy_helper.from_array(swapped, init.name))
    onnx.save(model, str(target))
    fixed.source_path(target).write_bytes(fixed.source_path(path).read_bytes())
    return target


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_exported_file_reads_as_its_source_network(kind: str, exported: dict[str, Path]) -> None:
    impl = registry.load(str(exported[kind]))
    assert impl.capabilities.cells == {kind}
    config = fixed.config(impl)
    assert (config.num_layers, config.bidirectional, config.input_size) == (2, True, 5)
    own = registry.load  # the file read without its source network gives the same weights
    source = fixed.source_path(exported[kind])
    moved = source.rename(source.with_suffix(".away"))
    try:
        read = fixed.weights(own(str(exported[kind])))
    finally:
        moved.rename(source)
    assert all(
        np.allclose(read[name], value, atol=1e-7) for name, value in fixed.weights(impl).items()
    )
    for batch_first in (False, True):
        case = fixed.fit(make_case(kind, batch_first=batch_first, **SIZES), config)
        parity.check_forward(impl, case, ignore)
        layout.check_layout(impl, case, ignore)


def test_corrupted_copy_fails_parity_naming_the_gate_permutation(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    impl = registry.load(str(corrupt(exported["lstm"], tmp_path / "bad.onnx")))
    case = fixed.fit(make_case("lstm", **SIZES), fixed.config(impl))
    with pytest.raises(CheckFailure) as failure:
        parity.check_forward(impl, case, ignore)
    verdict = failure.value.details["diagnosis"]
    assert verdict.as_dict()["cause"] == "gate_permutation:i,o,g,f", str(verdict)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_impl_onnx_file_runs_the_suite_and_passes(
    kind: str, exported: dict[str, Path], pytester: pytest.Pytester
) -> None:
    result = pytester.runpytest_subprocess(
        SUITE, "--impl", str(exported[kind]), "-p", "no:cacheprovider", "-m", "not speed"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-2000:]
    counts = result.parseoutcomes()
    assert counts.get("failed", 0) == 0 and counts.get("passed", 0) > 0


def test_missing_file_and_wrong_graph_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImplementationError, match="no such file"):
        registry.load(str(tmp_path / "absent.onnx"))
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "relu.onnx"))
    with pytest.raises(ImplementationError, match="no RNN, GRU or LSTM node"):
        registry.load(str(tmp_path / "relu.onnx"))


def test_not_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises
    with pytest.raises(ImplementationError, match=r"not installed: pip install rnnspec\[onnx\]"):
        registry.load("onnxruntime")
    entry = next(found for found in registry.discover() if found.name == "onnxruntime")
    assert not entry.installed
    assert entry.error.startswith("not installed: pip install rnnspec[onnx]")
    from rnnspec.cli import main

    assert main(["list", "--strict"]) == 0  # a missing optional library is not broken
    assert "  not installed: pip install rnnspec[onnx]" in capsys.readouterr().out
