"""JAX: arrays on the CPU (or a GPU), gradients through ``jax.vjp``.

float64 needs JAX's x64 mode, a process-wide switch (``jax_enable_x64``). The kit sets it
for each case before the case's arrays are made: on for float64 cases, and for the others
back to what it was when the kit first touched JAX (off unless the user turned it on).
So a float32 case always runs in the user's own setting, whatever ran before it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnspec.frameworks import Framework, Pullback

if TYPE_CHECKING:
    from rnnspec.cases import Case
    from rnnspec.harness import Candidate, Outputs
    from rnnspec.protocol import Capabilities

PLATFORMS = {"cpu": "cpu", "cuda": "gpu"}


class JaxFramework(Framework):
    """Candidates are functions of JAX arrays. Weight gradients are those of the canonical
    weights through ``load_weights`` and the forward, so ``load_weights`` must map them
    with ``jax.numpy`` operations (no ``np.asarray``); ``gradients`` is not used."""

    name = "jax"
    title = "JAX"
    extra = "jax"

    def __init__(self) -> None:
        self.user_x64: bool | None = None

    def restrict(self, declared: Capabilities) -> Capabilities:
        return replace(
            declared,
            packed=False,
            devices=declared.devices & set(PLATFORMS),
            transforms=frozenset(),  # every transform is torch's
        )

    def configure(self, case: Case) -> None:
        self.require_installed()
        import jax

        if self.user_x64 is None:
            self.user_x64 = bool(jax.config.read("jax_enable_x64"))
        jax.config.update("jax_enable_x64", case.dtype == "float64" or self.user_x64)

    def device(self, name: str) -> Any:
        import jax

        from rnnspec.harness import Unsupported

        try:
            return jax.devices(PLATFORMS[name])[0]
        except RuntimeError:  # JAX raises it for a platform it has no backend for
            raise Unsupported(f"{name} not available to JAX") from None

    def dtype(self, name: str) -> Any:
        import jax.numpy as jnp

        return jnp.dtype(name)

    def require_device(self, name: str) -> None:
        self.device(name)

    def array_type(self) -> type:
        import jax

        return jax.Array

    def array_name(self) -> str:
        return "jax.Array"

    def array(
        self, value: np.ndarray, device: Any, dtype: Any, dtype_name: str, requires_grad: bool
    ) -> Any:
        import jax
        import jax.numpy as jnp

        return jax.device_put(jnp.asarray(value, dtype=dtype), device)

    def copy(self, value: Any) -> Any:
        import jax.numpy as jnp

        return jnp.array(value, copy=True)

    def device_of(self, value: Any) -> str:
        platform = next(iter(value.devices())).platform
        return {"gpu": "cuda"}.get(platform, platform)

    def to_device(self, value: Any, device: str) -> Any:
        import jax

        return jax.device_put(value, self.device(device))

    def no_grad(self) -> AbstractContextManager[None]:
        return nullcontext()  # JAX differentiates only inside jax.vjp

    def full_precision(self) -> AbstractContextManager[None]:
        import jax

        return jax.default_matmul_precision("highest")

    def vjp(self, candidate: Candidate) -> tuple[Outputs, Pullback]:
        """``jax.vjp`` of (canonical weights, input, h0) -> (output, *states), the network
        built afresh from the traced weights inside."""
        import jax

        from rnnspec.harness import Outputs, as_hx, as_states, guard

        case = candidate.case
        x, hx = candidate.prepare()

        def forward(weights: Any, x: Any, states: tuple[Any, ...]) -> tuple[Any, ...]:
            got = candidate.run(x, as_hx(states), instance=candidate.instantiate(weights))
            return got.output, got.states

        (output, states), pullback = guard(
            f"{candidate.impl.name}: jax.vjp of the forward",
            case,
            lambda: jax.vjp(forward, dict(candidate.given_weights), x, as_states(hx)),
        )

        def back(upstream: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
            weights, input_grad, state_grads = pullback((upstream[0], tuple(upstream[1:])))
            leaves = {"input": input_grad}
            if hx is not None:
                leaves.update(zip(case.state_names("0"), state_grads, strict=True))
            return leaves, weights

        return Outputs(output, tuple(states)), back

    def timed_backward(
        self, candidate: Candidate, call: Callable[[], Any], grad_output: Any
    ) -> Callable[[], Any]:
        """``jax.vjp`` from the weights and input to the output, and its pullback: the
        network is built from the weights inside, as a functional JAX model is."""
        import jax

        from rnnspec.harness import as_hx, as_states

        impl, config = candidate.impl, candidate.case.config
        device, dtype = candidate.device, candidate.dtype
        x, hx = candidate.prepare()
        primals = (dict(candidate.given_weights), x, as_states(hx))

        def output(weights: Any, x: Any, states: tuple[Any, ...]) -> Any:
            instance = impl.build(config, weights, device, dtype)
            return impl.call(instance, x, as_hx(states))[0]

        def forward_backward() -> Any:
            _, pullback = jax.vjp(output, *primals)
            return pullback(grad_output)

        return forward_backward
