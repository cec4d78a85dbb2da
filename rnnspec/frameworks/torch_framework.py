"""PyTorch: tensors on any device and dtype, autograd, ``PackedSequence``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from rnnspec.frameworks import Framework, Pullback

if TYPE_CHECKING:
    from rnnspec.harness import Candidate, Outputs


class TorchFramework(Framework):
    """Candidates are ``torch.nn``-style modules; weight gradients come from their
    ``gradients(instance)`` (``param.grad`` keyed by canonical names)."""

    name = "torch"
    title = "PyTorch"

    def device(self, name: str) -> Any:
        import torch

        return torch.device(name)

    def dtype(self, name: str) -> Any:
        import torch

        return getattr(torch, name)

    def require_device(self, name: str) -> None:
        import torch

        from rnnspec.harness import Unsupported

        if name == "cuda" and not torch.cuda.is_available():
            raise Unsupported("CUDA not available")

    def array_type(self) -> type:
        import torch

        return torch.Tensor

    def array(
        self, value: np.ndarray, device: Any, dtype: Any, dtype_name: str, requires_grad: bool
    ) -> Any:
        import torch

        tensor = torch.as_tensor(value).to(device, dtype, copy=True)
        return tensor.requires_grad_(requires_grad)

    def copy(self, value: Any) -> Any:
        return value.clone()

    def same(self, value: Any, before: Any) -> bool:
        import torch

        return bool(torch.equal(value, before))

    def device_of(self, value: Any) -> str:
        return str(value.device.type)

    def to_device(self, value: Any, device: str) -> Any:
        return value.to(device)

    def no_grad(self) -> AbstractContextManager[None]:
        import torch

        return torch.no_grad()

    @contextmanager
    def full_precision(self) -> Iterator[None]:
        """TF32 off for matmuls and cuDNN (cuDNN's RNN default is on), restored after."""
        import torch

        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """torch's global generator (CPU) forked, seeded, and restored after."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    def vjp(self, candidate: Candidate) -> tuple[Outputs, Pullback]:
        """Input and h0 as leaves that require grad; one ``backward`` of the sum of each
        result times its upstream gradient; weight gradients from ``impl.gradients``."""
        from rnnspec.harness import as_states

        x, hx = candidate.prepare(requires_grad=True)
        got = candidate.run(x, hx)

        def pullback(upstream: tuple[Any, ...]) -> tuple[dict[str, Any], Any]:
            values = (got.output, *got.states)
            total = sum(
                (value * gradient).sum() for value, gradient in zip(values, upstream, strict=True)
            )
            total.backward()
            leaves = {"input": x.grad}
            if hx is not None:
                names = candidate.case.state_names("0")
                leaves.update(
                    {name: state.grad for name, state in zip(names, as_states(hx), strict=True)}
                )
            return leaves, candidate.impl.gradients(candidate.instance)

        return got, pullback

    def timed_backward(
        self, candidate: Candidate, call: Callable[[], Any], grad_output: Any
    ) -> Callable[[], Any]:
        import torch

        def forward_backward() -> Any:
            output = call()
            torch.autograd.backward(output[0], grad_output)
            return output

        return forward_backward

    def synchronize(self, device: Any, result: Any) -> None:
        """torch on CUDA synchronizes the device; on the CPU it is synchronous."""
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.synchronize(device)

    def pack(self, x: Any, lengths: list[int], batch_first: bool) -> Any:
        from torch.nn.utils.rnn import pack_padded_sequence

        return pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)

    def unpack(self, output: Any, batch_first: bool, steps: int) -> Any | None:
        from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

        if not isinstance(output, PackedSequence):
            return None
        return pad_packed_sequence(output, batch_first=batch_first, total_length=steps)[0]
