"""Transforms: a torch candidate run through the tools that rewrite it, each result against
the gold (pytorch#130791, #158007, #175830, #123089, #32605, #105982).

``torch.compile`` (the ``aot_eager`` backend: Dynamo's graph capture and AOTAutograd, in
seconds; and the default ``inductor`` backend on one case per cell, which generates and
compiles C++ and takes seconds to a minute per case on two cores), ``torch.export`` (the
exported program is run), ``torch.jit.script`` (the candidate as a submodule, the way
TorchScript calls overloaded RNN forwards), ``torch.onnx.export`` run in ONNX Runtime,
``torch.func.functional_call`` with weights other than the candidate's own, and
``torch.func.vmap`` over a batch of inputs. A transform that raises, when applied or when
its result runs, fails as ``unsupported-transform``, apart from wrong numbers; a candidate
declares what it supports in ``Capabilities.transforms``, and the rest is skipped.
Cases are float32, the dtype compiled and exported models run in (a float64-only candidate:
float64).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Optional, Tuple  # noqa: UP035  TorchScript reads these annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnspec.cases import Case, make_case, needs
from rnnspec.checks import Record
from rnnspec.checks.assertions import compare_outputs
from rnnspec.harness import (
    Candidate,
    Unsupported,
    as_hx,
    as_states,
    build,
    build_with_gold,
    gold,
    guard,
    make_inputs,
    no_grad,
    quiet,
    require,
)
from rnnspec.protocol import Implementation, call_module
from rnnspec.spec import supports_proj

SIZES: dict[str, Any] = dict(steps=5, batch=3, input_size=5, hidden_size=7, dtype="float32")
LENGTHS = (3, 5, 1)
PROJ = 3
VMAP_SAMPLES = 3
REPLACED_SEED = 7_000_003  # the weights functional_call replaces


def _case(cell: str, layers: int = 1, bidirectional: bool = False, **given: Any) -> Case:
    return make_case(cell, layers, bidirectional, **{**SIZES, **given})


def _common(cell: str) -> list[Case]:
    """One layer with h0; two bidirectional batch_first layers without; projections."""
    found = [_case(cell), _case(cell, 2, True, batch_first=True, given_state=False)]
    if supports_proj(cell):
        found.append(_case(cell, proj_size=PROJ))
    return found


@needs("single_dtype")
def compile_cases(cells: Iterable[str]) -> list[Case]:
    """The common cases and packed unsorted lengths on one bidirectional layer."""
    return [
        case
        for cell in cells
        for case in [*_common(cell), _case(cell, 1, True, lengths=LENGTHS, given_state=False)]
    ]


@needs("single_dtype")
def inductor_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0 per cell: inductor compiles each case for seconds to a minute."""
    return [_case(cell) for cell in cells]


@needs("single_dtype")
def export_cases(cells: Iterable[str]) -> list[Case]:
    """The common cases and unbatched input. Not packed: a PackedSequence's batch sizes
    steer Python control flow, which torch.export cannot capture (README, findings)."""
    return [case for cell in cells for case in [*_common(cell), _case(cell, batch=None)]]


@needs("single_dtype")
def onnx_cases(cells: Iterable[str]) -> list[Case]:
    """Two bidirectional layers with h0 (each export takes seconds). Not packed, and no
    projections: ONNX's LSTM operator has none (README, findings)."""
    return [_case(cell, 2, True) for cell in cells]


@needs("single_dtype")
def vmap_cases(cells: Iterable[str]) -> list[Case]:
    """One layer with h0; two bidirectional batch_first layers without."""
    return [
        case
        for cell in cells
        for case in [_case(cell), _case(cell, 2, True, batch_first=True, given_state=False)]
    ]


class Caller(nn.Module):
    """The candidate as one module called with its own convention (``impl.call``): what
    export traces and functional_call reparametrizes (its weights are ``inner.*``)."""

    def __init__(self, impl: Implementation, instance: Any) -> None:
        super().__init__()
        self.call = impl.call
        self.inner = instance

    def forward(self, x: Any, hx: Any = None) -> Any:
        return self.call(self.inner, x, hx)


class ScriptedOneState(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, hx: Optional[Tensor]):  # noqa: UP045, ANN201
        return self.inner(x, hx)


class ScriptedTwoStates(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, hx: Optional[Tuple[Tensor, Tensor]]):  # noqa: UP006, UP045, ANN201
        return self.inner(x, hx)


class ScriptedPackedOneState(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: PackedSequence, hx: Optional[Tensor]):  # noqa: UP045, ANN201
        return self.inner(x, hx)


class ScriptedPackedTwoStates(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: PackedSequence, hx: Optional[Tuple[Tensor, Tensor]]):  # noqa: UP006, UP045, ANN201
        return self.inner(x, hx)


SCRIPTED = {
    (False, 1): ScriptedOneState,
    (False, 2): ScriptedTwoStates,
    (True, 1): ScriptedPackedOneState,
    (True, 2): ScriptedPackedTwoStates,
}


def _transformed(
    impl: Implementation,
    case: Case,
    record: Record,
    transform: str,
    call_transformed: Callable[[Candidate, Any, Any], Any],
) -> None:
    """Build the candidate on the case's weights, ``call_transformed(candidate, x, hx)`` (x packed when
    the case is) under the transform, and compare what it returns with the gold."""
    __tracebackhide__ = True
    require(impl, case, transform=transform)
    candidate, expected = build_with_gold(impl, case)
    x, hx = candidate.prepare()
    with no_grad(candidate), quiet():
        raw = guard(
            f"{impl.name} under {transform}",
            case,
            lambda: call_transformed(candidate, candidate.pack(x), hx),
            kind="unsupported-transform",
        )
    got = candidate.unpack(raw)
    compare_outputs(got, expected, case, record, suffix=f" under {transform}")


def _compiled(backend: str) -> Callable[[Candidate, Any, Any], Any]:
    def call_compiled(candidate: Candidate, x: Any, hx: Any) -> Any:
        torch._dynamo.reset()  # a fresh cache: past its recompile limit Dynamo runs eagerly
        compiled = torch.compile(candidate.instance, backend=backend)
        return candidate.impl.call(compiled, x, hx)

    return call_compiled


def check_compile(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.compile(backend="aot_eager")``: graph capture and AOTAutograd, not codegen."""
    __tracebackhide__ = True
    _transformed(impl, case, record, "compile", _compiled("aot_eager"))


def check_compile_inductor(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.compile()`` with its default backend, inductor: generated kernels."""
    __tracebackhide__ = True
    _transformed(impl, case, record, "compile", _compiled("inductor"))


def _arguments(x: Any, hx: Any) -> tuple[Any, ...]:
    return (x,) if hx is None else (x, hx)


def _exported(candidate: Candidate, x: Any, hx: Any) -> Any:
    caller = Caller(candidate.impl, candidate.instance)
    program = torch.export.export(caller, _arguments(x, hx))
    return program.module()(*_arguments(x, hx))


def check_export(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.export.export``; the exported program's module is run on the same input."""
    __tracebackhide__ = True
    _transformed(impl, case, record, "export", _exported)


def _scripted(candidate: Candidate, x: Any, hx: Any) -> Any:
    """TorchScript returns a packed output as a namedtuple of its own making with
    PackedSequence's fields: it is made a PackedSequence again, as scripted callers see it."""
    packed = isinstance(x, PackedSequence)
    wrapper = SCRIPTED[packed, len(candidate.case.state_names())]
    output, state = torch.jit.script(wrapper(candidate.instance))(x, hx)
    return (PackedSequence(*output) if packed else output), state


def check_script(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.jit.script`` of a module holding the candidate, called with torch.nn's
    convention (hx=None or given)."""
    __tracebackhide__ = True
    if impl.call is not call_module:
        require(impl, case, transform="script")
        raise Unsupported("script needs torch.nn's call convention; this candidate has a call")
    _transformed(impl, case, record, "script", _scripted)


def _onnx_runtime(candidate: Candidate, x: Any, hx: Any) -> Any:
    import onnxruntime

    caller = Caller(candidate.impl, candidate.instance)
    program = torch.onnx.export(caller, _arguments(x, hx), dynamo=True, verbose=False)
    session = onnxruntime.InferenceSession(
        program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    leaves = [x, *as_states(hx)]
    names = [given.name for given in session.get_inputs()]
    feed = {name: leaf.numpy() for name, leaf in zip(names, leaves, strict=True)}
    output, *states = (torch.from_numpy(value) for value in session.run(None, feed))
    return output, states[0] if len(states) == 1 else tuple(states)


def check_onnx(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.onnx.export`` (the dynamo exporter, torch's default) run in ONNX Runtime:
    the suite runs it only where onnxruntime and onnxscript are installed."""
    __tracebackhide__ = True
    _transformed(impl, case, record, "onnx", _onnx_runtime)


def check_functional_call(impl: Implementation, case: Case, record: Record) -> None:
    """After a first call on other weights, ``torch.func.functional_call`` with the case's
    weights (parameters and buffers in the candidate's own names, taken from an instance
    built on them) equals the gold: the replaced weights reach the computation."""
    __tracebackhide__ = True
    require(impl, case, transform="functional_call")
    donor, expected = build_with_gold(impl, case)
    if not isinstance(donor.instance, nn.Module):
        raise Unsupported("functional_call needs an nn.Module")
    if impl.read_weights is not None:
        raise Unsupported(f"{impl.name} has fixed weights of its own: none are loaded into it")
    weights = make_inputs(case.replace(seed=case.seed + REPLACED_SEED)).weights
    candidate = build(impl, case, replace(donor.inputs, weights=weights))
    state = {**dict(donor.instance.named_parameters()), **dict(donor.instance.named_buffers())}
    replaced = {f"inner.{name}": value for name, value in state.items()}
    caller = Caller(impl, candidate.instance)
    x, hx = candidate.prepare()
    with no_grad(candidate), quiet():
        candidate.run(x, hx)
        raw = guard(
            f"{impl.name} under functional_call",
            case,
            lambda: torch.func.functional_call(caller, replaced, _arguments(candidate.pack(x), hx)),
            kind="unsupported-transform",
        )
    got = candidate.unpack(raw)
    compare_outputs(got, expected, case, record, suffix=" under functional_call")


def _select(value: Any, index: int) -> Any:
    """Entry ``index`` of every tensor in a (nested) tuple or list."""
    if isinstance(value, tuple | list):
        return type(value)(_select(item, index) for item in value)
    return value[index]


def check_vmap(impl: Implementation, case: Case, record: Record) -> None:
    """``torch.func.vmap`` over a stack of inputs (and h0) run with one set of weights:
    each sample equals the gold on its own input."""
    __tracebackhide__ = True
    require(impl, case, transform="vmap")
    first = make_inputs(case, impl)
    samples = [first] + [
        replace(make_inputs(case.replace(seed=case.seed + n), impl), weights=first.weights)
        for n in range(1, VMAP_SAMPLES)
    ]
    candidate = build(impl, case, first)
    xs = torch.stack([candidate.tensor(sample.x) for sample in samples])
    states = [
        torch.stack([candidate.tensor(sample.hx[k]) for sample in samples])
        for k in range(len(first.hx or ()))
    ]

    def one(x: Tensor, *state: Tensor) -> Any:
        return impl.call(candidate.instance, x, as_hx(state))

    with no_grad(candidate), quiet():
        raw = guard(
            f"{impl.name} under vmap",
            case,
            lambda: torch.func.vmap(one)(xs, *states),
            kind="unsupported-transform",
        )
    for n, sample in enumerate(samples):
        got = candidate.unpack(_select(raw, n))
        expected = gold(case, sample)
        compare_outputs(got, expected, case, record, suffix=f" of sample {n} under vmap")
