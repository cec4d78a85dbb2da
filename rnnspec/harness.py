"""Run a candidate and the gold reference on the same case, safely.

A candidate that raises, returns the wrong structure or the wrong type is reported as a
:class:`~rnnspec.compare.CheckFailure` of that kind; the caller's run goes on. So is
one that writes into the canonical weights it was given, or returns arrays that share memory
with its input. :func:`global_state` snapshots what a candidate can change in the process
(torch's and NumPy's modes, RNG states) and :func:`restore` puts it back.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnspec import frameworks
from rnnspec.cases import Case, unsupported
from rnnspec.compare import CheckFailure, check_dtype
from rnnspec.errors import RnnSpecError, Unsupported
from rnnspec.protocol import Implementation
from rnnspec.spec import Cell
from rnnspec.weights import random_input, random_state, random_weights


@dataclass
class Inputs:
    """Float64 canonical weights, input, initial state and lengths for one case."""

    weights: dict[str, np.ndarray]
    x: np.ndarray
    hx: tuple[np.ndarray, ...] | None
    lengths: tuple[int, ...] | None


@dataclass
class Outputs:
    """What a network returned: output (padded if packed) and states, as given."""

    output: Any
    states: tuple[Any, ...]


def as_hx(states: tuple[Any, ...]) -> Any:
    """States as torch.nn takes hx: None for none, the one tensor alone, or the tuple."""
    return None if not states else states if len(states) > 1 else states[0]


def as_states(hx: Any) -> tuple[Any, ...]:
    """The inverse of :func:`as_hx`: hx (or a returned state) as a tuple."""
    return () if hx is None else hx if isinstance(hx, tuple) else (hx,)


def make_inputs(case: Case, impl: Implementation | None = None) -> Inputs:
    """Random inputs for ``case``; the weights are random too, except a fixed-weight
    candidate's own (``impl.read_weights``), for a case on its configuration."""
    config = case.config
    x = random_input(config, case.steps, case.batch, case.seed)
    if case.lengths is not None:
        steps = np.arange(case.steps)[:, None] < np.asarray(case.lengths)[None, :]
        mask = steps if not config.batch_first else steps.T
        x = x * mask[..., None]
    hx = random_state(config, case.batch, case.seed) if case.given_state else None
    return Inputs(_weights(case, impl), x, hx, case.lengths)


def _weights(case: Case, impl: Implementation | None) -> dict[str, np.ndarray]:
    if impl is None or impl.read_weights is None:
        return random_weights(case.config, case.seed)
    from rnnspec import fixed

    own = fixed.weights(impl)
    shapes = {name: value.shape for name, value in own.items()}
    if shapes != case.config.parameter_shapes():
        raise Unsupported(
            f"{impl.name} has fixed weights for {fixed.config(impl).describe()}, "
            f"not {case.config.describe()}"
        )
    return own


def gold(case: Case, inputs: Inputs) -> Outputs:
    """The float64 NumPy reference on the case's inputs."""
    from reference.gold import forward

    output, state = forward(case.config, inputs.weights, inputs.x, inputs.hx, inputs.lengths)
    return Outputs(output, as_states(state))


def _same_weights(weights: Mapping[str, np.ndarray], others: Mapping[str, np.ndarray]) -> bool:
    return weights.keys() == others.keys() and all(
        np.array_equal(value, others[name]) for name, value in weights.items()
    )


def require(
    impl: Implementation,
    case: Case,
    gradients: bool = False,
    initial_state: bool = False,
    transform: str | None = None,
) -> None:
    """Raise :class:`Unsupported` with the reason when ``impl`` cannot run ``case``
    (``initial_state``: the check passes h0 even where the case does not; ``transform``:
    the check runs the candidate through that transform)."""
    reason = unsupported(
        impl.effective_capabilities,
        case,
        gradients=gradients,
        initial_state=initial_state,
        transform=transform,
    )
    if reason:
        raise Unsupported(reason)


def guard(what: str, case: Case, action: Callable[[], Any], kind: str = "raised") -> Any:
    """Run ``action``; an exception from the candidate becomes a failure of ``kind``,
    but :class:`Unsupported` (the candidate declining the case) stays a skip."""
    __tracebackhide__ = True
    try:
        return action()
    except (CheckFailure, Unsupported):
        raise
    except Exception as error:
        raise CheckFailure(
            f"{what} raised {type(error).__name__}: {error} [{case.label()}]",
            kind=kind,
        ) from error


class Candidate:
    """A candidate instance built for one case, with the case's weights loaded."""

    def __init__(self, impl: Implementation, case: Case, inputs: Inputs) -> None:
        self.impl, self.case, self.inputs = impl, case, inputs
        if impl.read_weights is not None and not _same_weights(
            inputs.weights, _weights(case, impl)
        ):
            raise RnnSpecError(
                f"{impl.name} has fixed weights, but the inputs carry others: a check must "
                "draw them with make_inputs(case, impl)"
            )
        self.cell: Cell = case.config.resolve()
        self.framework = frameworks.get(impl.framework)
        self.framework.configure(case)
        self.device: Any = self.framework.device(case.device)
        self.dtype: Any = self.framework.dtype(case.dtype)
        self.given_weights: Mapping[str, Any] = {
            name: self.tensor(value) for name, value in inputs.weights.items()
        }
        self.weights_before = {
            name: self.framework.copy(value) for name, value in self.given_weights.items()
        }
        self.instance = self.instantiate(self.given_weights)
        self.check_weights_kept("building the network")

    def instantiate(self, weights: Mapping[str, Any]) -> Any:
        """A new instance of the candidate with ``weights`` (in its framework) loaded."""
        impl, case = self.impl, self.case
        return guard(
            f"{impl.name}: building the network",
            case,
            lambda: impl.build(case.config, weights, self.device, self.dtype),
        )

    def check_weights_kept(self, when: str) -> None:
        """The canonical weights handed to ``build`` are unchanged: a candidate must copy
        them, not write into them."""
        __tracebackhide__ = True
        if self.case.device == "meta":
            return
        for name, value in self.given_weights.items():
            if not self.framework.same(value, self.weights_before[name]):
                raise CheckFailure(
                    f"{self.impl.name}: {when} modified the canonical weight {name} it was "
                    f"given, but should leave it unchanged (copy it in load_weights) "
                    f"[{self.case.label()}]",
                    kind="modified-weights",
                )

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        """``array`` in the candidate's framework, device and dtype (a new array)."""
        return self.framework.array(array, self.device, self.dtype, self.case.dtype, requires_grad)

    def prepare(self, requires_grad: bool = False) -> tuple[Any, Any]:
        """The candidate's input (padded: :meth:`run` packs it) and hx, in its framework."""
        x = self.tensor(self.inputs.x, requires_grad)
        states = tuple(self.tensor(state, requires_grad) for state in self.inputs.hx or ())
        return x, as_hx(states)

    def pack(self, x: Any) -> Any:
        if self.inputs.lengths is None:
            return x
        return self.framework.pack(x, list(self.inputs.lengths), self.case.config.batch_first)

    def run(self, x: Any, hx: Any, instance: Any = None) -> Outputs:
        """Call the candidate (or ``instance``) and check the structure of what it returned."""
        __tracebackhide__ = True
        fed = self.pack(x)
        network = self.instance if instance is None else instance
        result = guard(
            f"{self.impl.name}: forward", self.case, lambda: self.impl.call(network, fed, hx)
        )
        self.check_weights_kept("forward")
        got = self.unpack(result)
        self.check_no_alias((result[0], *got.states), (fed, *as_states(hx)))
        return got

    def check_no_alias(self, returned: tuple[Any, ...], given: tuple[Any, ...]) -> None:
        """No returned array (output as returned, packed or not; states) shares memory with
        the input or an initial state."""
        __tracebackhide__ = True
        if self.case.device == "meta":
            return
        given_names = ["input", *self.case.state_names("0")][: len(given)]
        for what, value in zip(self.case.result_names(), returned, strict=True):
            for name, source in zip(given_names, given, strict=True):
                if _overlap(value, source):
                    raise CheckFailure(
                        f"{what} shares memory with {name}, but should be a new array (a "
                        f"caller may reuse {name}) [{self.case.label()}]",
                        kind="aliased-output",
                    )

    def unpack(self, result: Any, dtypes: tuple[str, ...] | None = None) -> Outputs:
        """Check the structure of ``result``: arrays of the case's dtype, or of one of
        ``dtypes`` (autocast returns its own)."""
        __tracebackhide__ = True
        label = self.case.label()
        if not isinstance(result, tuple) or len(result) != 2:
            raise CheckFailure(
                f"forward returned {type(result).__name__}, but should return a tuple "
                f"(output, state) [{label}]",
                kind="wrong-type",
            )
        output, state = result
        if self.inputs.lengths is not None:
            padded = self.framework.unpack(output, self.case.config.batch_first, self.case.steps)
            if padded is None:
                raise CheckFailure(
                    f"output is {type(output).__name__}, but should be PackedSequence for "
                    f"packed input [{label}]",
                    kind="wrong-type",
                )
            output = padded
        names = self.case.state_names()
        states = state if isinstance(state, tuple | list) and len(names) > 1 else (state,)
        if len(names) > 1 and not isinstance(state, tuple | list):
            raise CheckFailure(
                f"state is {type(state).__name__}, but should be a tuple ({', '.join(names)}) "
                f"[{label}]",
                kind="wrong-type",
            )
        if len(states) != len(names):
            raise CheckFailure(
                f"state has {len(states)} entries, but should have {len(names)} "
                f"({', '.join(names)}) [{label}]",
                kind="wrong-type",
            )
        expected_type = self.framework.array_type()
        for what, value in zip(self.case.result_names(), (output, *states), strict=True):
            if not isinstance(value, expected_type):
                raise CheckFailure(
                    f"{what} is {type(value).__name__}, but should be "
                    f"{self.framework.array_name()} [{label}]",
                    kind="wrong-type",
                )
            if dtypes is None:
                check_dtype(value, self.case.dtype, what, label)
        return Outputs(output, tuple(states))


def no_grad(candidate: Candidate) -> AbstractContextManager[None]:
    """The candidate's framework without gradient tracking (``torch.no_grad()``)."""
    return candidate.framework.no_grad()


HEARD: list[warnings.WarningMessage] = []
"""The candidate's warnings caught by :func:`quiet`, for the reports to count."""
# "always", spelled so that no other filter equals it: adding it removes none of the caller's
_ALWAYS_MESSAGE = "(?:rnnspec-quiet)?"


@contextmanager
def quiet() -> Iterator[None]:
    """Keep the candidate's warnings out of the caller's filters (torch.nn warns about
    dropout on one layer and about oneDNN fallbacks, and a warning is not a failure): they
    are kept in :data:`HEARD`. A filter the candidate itself changed is left changed, for
    the global-state guard to see."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=_ALWAYS_MESSAGE)
        ours = list(warnings.filters)
        try:
            yield
        finally:
            theirs = list(warnings.filters)
    HEARD.extend(caught)
    if theirs != ours:
        warnings.filters[:] = [entry for entry in theirs if entry != ours[0]]  # type: ignore[index]
        mutated = getattr(warnings, "_filters_mutated", None)  # its caches follow (< 3.14)
        if mutated is not None:
            mutated()


def build(impl: Implementation, case: Case, inputs: Inputs | None = None) -> Candidate:
    """The candidate built quietly, on ``inputs`` or else ``make_inputs(case, impl)``."""
    with quiet():
        return Candidate(impl, case, make_inputs(case, impl) if inputs is None else inputs)


def build_with_gold(impl: Implementation, case: Case) -> tuple[Candidate, Outputs]:
    """The gold's outputs on the case's inputs, and the candidate built quietly on the same
    inputs (``candidate.inputs``)."""
    inputs = make_inputs(case, impl)
    expected = gold(case, inputs)
    return build(impl, case, inputs), expected


def forward(candidate: Candidate) -> Outputs:
    """One forward on the case's inputs, under ``no_grad``."""
    __tracebackhide__ = True
    with no_grad(candidate):
        return candidate.run(*candidate.prepare())


def run_quietly(candidate: Candidate) -> Outputs:
    """:func:`forward` with the candidate's warnings ignored."""
    __tracebackhide__ = True
    with quiet():
        return forward(candidate)


def _storage(value: Any) -> Any:
    """The torch tensor or NumPy array holding ``value``'s elements (PackedSequence: data)."""
    data = getattr(value, "data", value) if type(value).__name__ == "PackedSequence" else value
    return data if hasattr(data, "untyped_storage") or isinstance(data, np.ndarray) else None


def _overlap(a: Any, b: Any) -> bool:
    a, b = _storage(a), _storage(b)
    if a is None or b is None or type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return bool(np.shares_memory(a, b))
    if a.numel() == 0 or b.numel() == 0:
        return False
    return bool(a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def global_state() -> dict[str, Any]:
    """What a candidate can change in the process, by name: torch's grad and anomaly modes, default dtype and device, deterministic algorithms, threads and float32
    matmul precision, NumPy's error state, and every random generator's state."""
    import torch

    return {
        "torch grad mode": torch.is_grad_enabled(),
        "torch anomaly detection": torch.is_anomaly_enabled(),
        "torch default dtype": torch.get_default_dtype(),
        "torch default device": torch.get_default_device(),
        "torch deterministic algorithms": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "torch threads": torch.get_num_threads(),
        "torch float32 matmul precision": torch.get_float32_matmul_precision(),
        "numpy error state": np.geterr(),
        RNG: (torch.get_rng_state(), np.random.get_state(), random.getstate()),
    }


RNG = "random generator states"  # restored, never a fault: building a network draws from them


def restore(before: dict[str, Any]) -> list[str]:
    """Put back everything :func:`global_state` took; return what had changed, as
    ``name: before -> now`` (random generators restored silently)."""
    import torch

    now = global_state()
    changed = [
        f"{name}: {before[name]} -> {now[name]}"
        for name in before
        if name != RNG and before[name] != now[name]
    ]
    setters: dict[str, Callable[[Any], Any]] = {
        "torch grad mode": torch.set_grad_enabled,
        "torch anomaly detection": torch.set_anomaly_enabled,
        "torch default dtype": torch.set_default_dtype,
        "torch default device": lambda d: torch.set_default_device(None if d.type == "cpu" else d),
        "torch deterministic algorithms": lambda d: torch.use_deterministic_algorithms(
            d[0], warn_only=d[1]
        ),
        "torch threads": torch.set_num_threads,
        "torch float32 matmul precision": torch.set_float32_matmul_precision,
        "numpy error state": lambda state: np.seterr(**state),
    }
    for name, setter in setters.items():
        if before[name] != now[name]:
            setter(before[name])
    torch_rng, numpy_rng, python_rng = before[RNG]
    torch.set_rng_state(torch_rng)
    np.random.set_state(numpy_rng)
    random.setstate(python_rng)
    return changed


@contextmanager
def preserved_global_state() -> Iterator[None]:
    """Whatever runs inside leaves :func:`global_state` and the warning filters as found."""
    before = global_state()
    try:
        with warnings.catch_warnings():
            yield
    finally:
        restore(before)
