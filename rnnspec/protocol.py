"""The implementation protocol: what a candidate declares and how the kit drives it.

A module with ``torch.nn.LSTM``'s constructor, call convention and parameter names needs
only ``Implementation.from_module(MyLSTM, cells={"lstm"})``. Other layouts pass a
``load_weights`` that maps the canonical weights (PyTorch names and gate order) onto their
parameters, and a ``gradients`` that maps their gradients back. NumPy candidates set
``framework="numpy"`` and get forward checks only; JAX candidates set ``framework="jax"``
and get gradient checks through ``jax.vjp`` (see :mod:`rnnspec.frameworks`). A candidate with weights of its own (a
trained or exported model) gives ``read_weights`` instead of ``load_weights``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from rnnspec import frameworks, torch_equivalents
from rnnspec.config import RNNConfig

ALL_CELLS = frozenset(
    {"elman", "elman:relu", "gru", "gru:reset_before", "lstm", "lstm:peephole", "lstm:coupled"}
)
ALL_DTYPES = frozenset({"float64", "float32", "bfloat16", "float16"})
ALL_DEVICES = frozenset({"cpu", "meta", "cuda"})
# What a torch candidate may be run through (rnnspec.checks.transforms, gradients, dtype).
ALL_TRANSFORMS = frozenset(
    {
        "compile",
        "export",
        "script",
        "onnx",
        "functional_call",
        "vmap",
        "jvp",
        "double_backward",
        "autocast",
    }
)


@dataclass(frozen=True)
class Capabilities:
    """What a candidate is: the envelope every check runs in.

    The defaults are ``torch.nn``'s: every cell of it, any number of layers, both
    directions, both layouts, batched and unbatched input, an optional initial state,
    every dtype and device. Each check runs on the nearest configuration inside the
    envelope (two layers become one for ``max_layers=1``, batch_first becomes time-major
    for ``batch_first=False``, float64 becomes float32 for ``dtypes={"float32"}``); what
    cannot run anywhere in it (packed input when ``packed=False``) is skipped with the
    reason. ``cells`` names kinds with variants (``"gru:reset_before"``); ``"*"`` is any
    spec, user specs included (the generated reference declares it).
    """

    cells: frozenset[str] = field(default_factory=torch_equivalents.cells)
    max_layers: int | None = None
    bidirectional: bool = True
    unidirectional: bool = True
    no_bias: bool = True
    time_major: bool = True
    batch_first: bool = True
    proj_size: bool = True
    packed: bool = True
    batched: bool = True
    unbatched: bool = True
    initial_state: bool = True
    dropout: bool = True
    dtypes: frozenset[str] = ALL_DTYPES
    precision: str | None = None
    devices: frozenset[str] = ALL_DEVICES
    gradients: bool = True
    transforms: frozenset[str] = ALL_TRANSFORMS

    def __post_init__(self) -> None:
        for name in ("cells", "dtypes", "devices", "transforms"):  # any collection; hashable
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        pairs = (
            ("time_major", "batch_first", "a layout"),
            ("batched", "unbatched", "batched or unbatched input"),
            ("unidirectional", "bidirectional", "a direction"),
        )
        for first, second, what in pairs:
            if not (getattr(self, first) or getattr(self, second)):
                raise ValueError(
                    f"Capabilities: {first}=False and {second}=False leave no {what}; "
                    "declare at least one"
                )
        if self.max_layers is not None and self.max_layers < 1:
            raise ValueError(f"Capabilities: max_layers must be >= 1, got {self.max_layers}")
        for name, values in (("dtypes", self.dtypes), ("devices", self.devices)):
            known = ALL_DTYPES if name == "dtypes" else ALL_DEVICES
            if not values or not set(values) <= known:
                raise ValueError(
                    f"Capabilities: {name} must be a non-empty subset of "
                    f"{sorted(known)}, got {sorted(values)}"
                )
        if not self.transforms <= ALL_TRANSFORMS:
            raise ValueError(
                f"Capabilities: transforms must be a subset of {sorted(ALL_TRANSFORMS)}, "
                f"got {sorted(self.transforms)}"
            )
        if self.precision is not None and self.precision not in ALL_DTYPES:
            raise ValueError(
                f"Capabilities: precision must be None or one of {sorted(ALL_DTYPES)}, "
                f"got {self.precision!r}"
            )

    def declares(self, cell: str) -> bool:
        """Whether ``cell`` (``"gru:reset_before"``) is among the declared cells."""
        return "*" in self.cells or cell in self.cells

    def unsupported(
        self,
        config: RNNConfig,
        *,
        dtype: str = "float64",
        device: str = "cpu",
        packed: bool = False,
        unbatched: bool = False,
        initial_state: bool = False,
        gradients: bool = False,
        transform: str | None = None,
    ) -> str | None:
        """Why this candidate cannot run the case, or None when it can. ``initial_state``:
        the run passes h0 (c0)."""
        checks = [
            (
                not self.declares(config.cell),
                f"cell {config.cell} not supported (supports: {', '.join(sorted(self.cells))})",
            ),
            (
                self.max_layers is not None and config.num_layers > self.max_layers,
                f"num_layers={config.num_layers} > max_layers={self.max_layers}",
            ),
            (config.bidirectional and not self.bidirectional, "bidirectional not supported"),
            (
                not config.bidirectional and not self.unidirectional,
                "unidirectional not supported (bidirectional only)",
            ),
            (not config.bias and not self.no_bias, "bias=False not supported"),
            (config.batch_first and not self.batch_first, "batch_first not supported"),
            (
                not config.batch_first and not self.time_major,
                "time-major input not supported (batch_first only)",
            ),
            (config.proj_size > 0 and not self.proj_size, "proj_size not supported"),
            (config.dropout > 0 and not self.dropout, "dropout not supported"),
            (packed and not self.packed, "packed sequences not supported"),
            (unbatched and not self.unbatched, "unbatched input not supported"),
            (not unbatched and not self.batched, "batched input not supported (unbatched only)"),
            (initial_state and not self.initial_state, "an initial state (hx) not accepted"),
            (dtype not in self.dtypes, f"dtype {dtype} not supported"),
            (device not in self.devices, f"device {device} not supported"),
            (gradients and not self.gradients, "gradients not supported"),
            (
                transform is not None and transform not in self.transforms,
                f"transform {transform} not supported (supports: "
                f"{', '.join(sorted(self.transforms)) or 'none'})",
            ),
        ]
        return next((reason for failed, reason in checks if failed), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            name: sorted(value) if isinstance(value, set | frozenset) else value
            for name, value in ((f.name, getattr(self, f.name)) for f in fields(self))
        }


def load_state_dict_weights(module: Any, weights: Mapping[str, Any]) -> None:
    """Copy canonical weights into a module whose parameters carry PyTorch's names."""
    import torch

    params = dict(module.named_parameters())
    missing = sorted(set(weights) - set(params))
    unexpected = sorted(set(params) - set(weights))
    if missing or unexpected:
        raise KeyError(
            f"parameter names differ from the canonical ones: missing {missing}, "
            f"unexpected {unexpected}; pass load_weights= to map them"
        )
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


def named_parameter_gradients(module: Any) -> dict[str, Any]:
    """Gradients keyed by canonical names, for modules that use PyTorch's names."""
    return {name: param.grad for name, param in module.named_parameters()}


def call_module(module: Any, x: Any, hx: Any) -> Any:
    return module(x) if hx is None else module(x, hx)


@dataclass(frozen=True)
class Implementation:
    """A candidate RNN implementation, as registered under ``rnnspec.implementations``.

    ``factory(config, device, dtype)`` builds an instance (device and dtype are the
    framework's: ``torch.device``/``torch.dtype``, a ``jax.Device``/NumPy dtype for JAX,
    None for NumPy); ``load_weights(instance, weights)`` installs the canonical weights
    (tensors, JAX arrays or NumPy arrays in the case's dtype); ``gradients(instance)``
    returns the weight gradients keyed by canonical names (torch only: JAX differentiates
    through ``load_weights``); ``call(instance, x, hx)`` runs it and returns
    ``(output, h_n)`` or ``(output, (h_n, c_n))`` like ``torch.nn``. ``framework`` names
    one of :data:`rnnspec.frameworks.NAMES`; :attr:`effective_capabilities` is what of
    ``capabilities`` that framework can run.

    A fixed-weight candidate (an exported or trained model) gives ``read_weights()``: its
    own weights in canonical form (float64 arrays under PyTorch's names). It declares the
    one cell it is; the kit runs every case on the configuration those weights describe,
    computes the gold from them and never calls ``load_weights`` (:mod:`rnnspec.fixed`).
    """

    name: str
    factory: Callable[[RNNConfig, Any, Any], Any]
    capabilities: Capabilities = field(default_factory=Capabilities)
    load_weights: Callable[[Any, Mapping[str, Any]], None] = load_state_dict_weights
    gradients: Callable[[Any], Mapping[str, Any]] = named_parameter_gradients
    call: Callable[[Any, Any, Any], Any] = call_module
    framework: str = "torch"
    description: str = ""
    read_weights: Callable[[], Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.read_weights is not None and (
            len(self.capabilities.cells) != 1 or "*" in self.capabilities.cells
        ):
            raise ValueError(
                "a candidate with read_weights is one network: declare exactly its cell, "
                f"got cells={sorted(self.capabilities.cells)}"
            )
        frameworks.get(self.framework)  # an unknown name fails here, not in every check

    @property
    def effective_capabilities(self) -> Capabilities:
        """The declared capabilities less what the framework cannot run (NumPy: gradients,
        packing, devices other than the CPU, dtypes other than float64 and float32)."""
        return frameworks.get(self.framework).restrict(self.capabilities)

    @classmethod
    def from_module(
        cls,
        module_class: Callable[..., Any],
        *,
        name: str | None = None,
        cells: Collection[str] | None = None,
        **capabilities: Any,
    ) -> Implementation:
        """Register a ``torch.nn``-style module class: ``module_class(**torch.nn kwargs)``.

        Pass ``cells={"lstm"}`` for an LSTM class (the default is every cell with a
        ``torch.nn`` equivalent); for other constructors or layouts,
        build an :class:`Implementation` with your own ``factory`` and ``load_weights``.
        """

        def factory(config: RNNConfig, device: Any, dtype: Any) -> Any:
            module = module_class(**torch_equivalents.kwargs(config))
            return module.to(device=device, dtype=dtype)

        label = name or str(getattr(module_class, "__qualname__", module_class))
        declared = torch_equivalents.cells() if cells is None else frozenset(cells)
        return cls(label, factory, Capabilities(cells=declared, **capabilities))

    def build(self, config: RNNConfig, weights: Mapping[str, Any], device: Any, dtype: Any) -> Any:
        """An instance for ``config`` with ``weights`` installed (already on device/dtype)."""
        instance = self.factory(config, device, dtype)
        if self.read_weights is None:
            self.load_weights(instance, weights)
        return instance
