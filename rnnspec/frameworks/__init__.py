"""Frameworks: what the kit does differently for a candidate in torch, NumPy or JAX.

A :class:`Framework` converts the case's float64 arrays into the framework's arrays on a
device and in a dtype, runs without gradient tracking, seeds the framework's global random
state, differentiates a forward through the framework's autodiff with given upstream
gradients, moves and places arrays, and waits for asynchronous work when timing.
``Implementation.framework`` names one (``"torch"``, ``"numpy"``, ``"jax"``); :func:`get`
returns it. What a framework cannot run at all (NumPy has no autodiff, only torch has
``PackedSequence``) is removed from the candidate's declared capabilities by
:meth:`Framework.restrict`, so those checks skip with the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnspec.errors import NotInstalled

if TYPE_CHECKING:
    from rnnspec.cases import Case
    from rnnspec.harness import Candidate, Outputs
    from rnnspec.protocol import Capabilities

Pullback = Callable[[tuple[Any, ...]], tuple[dict[str, Any], Mapping[str, Any]]]
"""Upstream gradients for (output, *states) -> (input and h0 gradients, weight gradients)."""

MODULES = {
    "torch": "rnnspec.frameworks.torch_framework:TorchFramework",
    "numpy": "rnnspec.frameworks.numpy_framework:NumpyFramework",
    "jax": "rnnspec.frameworks.jax_framework:JaxFramework",
}
NAMES = frozenset(MODULES)


class Framework:
    """The operations the harness and the checks need from a candidate's framework.

    The defaults fit a framework of host arrays without autodiff (NumPy); each method is
    overridden where a framework differs.
    """

    name: str = ""
    title: str = ""
    extra: str | None = None
    """The rnnspec extra that installs the framework: ``pip install rnnspec[extra]``."""

    def restrict(self, declared: Capabilities) -> Capabilities:
        """What of ``declared`` this framework can run (the effective capabilities)."""
        return declared

    def require_installed(self) -> None:
        """Raise :class:`~rnnspec.errors.NotInstalled` with the pip command when it cannot be imported."""
        if self.extra is None:
            return
        try:
            importlib.import_module(self.name)
        except ImportError as error:
            message = f"not installed: pip install rnnspec[{self.extra}] ({error})"
            raise NotInstalled(message, self.name) from error

    def configure(self, case: Case) -> None:
        """Settle process-wide settings ``case`` needs, before its arrays are made."""

    def device(self, name: str) -> Any:
        """The framework's device for ``"cpu"``, ``"cuda"`` or ``"meta"`` (None: no devices)."""
        return None

    def dtype(self, name: str) -> Any:
        """The framework's dtype called ``name`` (None: the arrays take the name itself)."""
        return None

    def require_device(self, name: str) -> None:
        """Raise :class:`~rnnspec.errors.Unsupported` when ``name`` is not present here."""

    def array_type(self) -> type:
        """The type every output and state must have."""
        return np.ndarray

    def array_name(self) -> str:
        """The array type as failure messages name it."""
        return self.array_type().__name__

    def array(
        self, value: np.ndarray, device: Any, dtype: Any, dtype_name: str, requires_grad: bool
    ) -> Any:
        """A fresh array of the framework holding ``value`` on ``device`` in ``dtype``."""
        return value.astype(dtype_name)

    def copy(self, value: Any) -> Any:
        """A copy of ``value`` that later in-place changes to it do not reach."""
        return np.copy(value)

    def same(self, value: Any, before: Any) -> bool:
        """Whether ``value`` is bitwise equal to ``before`` (a :meth:`copy`; finite values)."""
        return bool(np.array_equal(value, before))

    def device_of(self, value: Any) -> str:
        """``"cpu"``, ``"cuda"`` or ``"meta"``: where ``value`` lives."""
        return "cpu"

    def to_device(self, value: Any, device: str) -> Any:
        """``value`` moved to ``device``."""
        raise NotImplementedError(f"{self.name} arrays have no devices")

    def no_grad(self) -> AbstractContextManager[None]:
        """No gradient tracking inside."""
        return nullcontext()

    def full_precision(self) -> AbstractContextManager[None]:
        """float32 products in float32 inside (no TF32 or bfloat16 passes on GPUs)."""
        return nullcontext()

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """The framework's global random state fixed to ``seed`` inside, restored after."""
        yield

    def vjp(self, candidate: Candidate) -> tuple[Outputs, Pullback]:
        """Run the candidate forward, differentiably: its outputs, and the way back."""
        raise NotImplementedError(f"{self.name} has no automatic differentiation")

    def timed_backward(
        self, candidate: Candidate, call: Callable[[], Any], grad_output: Any
    ) -> Callable[[], Any]:
        """One forward (``call``) and backward with ``grad_output`` on the output, returning
        what :meth:`synchronize` waits for: the step a speed run times."""
        raise NotImplementedError(f"{self.name} has no automatic differentiation")

    def synchronize(self, device: Any, result: Any) -> None:
        """Wait until ``result`` (of a call on ``device``) is computed, for timing: here by
        converting it to NumPy arrays, which waits for asynchronous results (JAX's dispatch
        returns early) and costs a copy at most."""
        if isinstance(result, Mapping):
            result = list(result.values())
        if isinstance(result, tuple | list):
            for item in result:
                self.synchronize(device, item)
        elif result is not None:
            np.asarray(result)

    def pack(self, x: Any, lengths: list[int], batch_first: bool) -> Any:
        """``x`` with its ``lengths`` as the framework's packed sequence."""
        raise NotImplementedError(f"{self.name} has no packed sequences")

    def unpack(self, output: Any, batch_first: bool, steps: int) -> Any | None:
        """A packed output as a padded array, or None when ``output`` is not packed."""
        raise NotImplementedError(f"{self.name} has no packed sequences")


_LOADED: dict[str, Framework] = {}


def get(name: str) -> Framework:
    """The framework called ``name`` (one of :data:`NAMES`)."""
    if name not in MODULES:
        raise ValueError(f"framework must be one of {', '.join(sorted(NAMES))}, got {name!r}")
    if name not in _LOADED:
        module, _, attribute = MODULES[name].partition(":")
        _LOADED[name] = getattr(importlib.import_module(module), attribute)()
    return _LOADED[name]
