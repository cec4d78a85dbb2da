"""Compose generated layer functions into networks, once for every backend.

The rules (state index, direction order, reverse within lengths, dropout between layers)
are those of ``rnnspec/specs/composition.toml``. :func:`forward_network` also composes the
ways people get them wrong (``REVERSE_MODES``, ``FEEDS``), so the diagnosis can predict what
such a network computes with the same loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from reference.cells import LayerFunction
from rnnspec.spec import composition


class ArrayOps(Protocol):
    def masks(self, lengths: Any, steps: int) -> Any: ...
    def reverse(self, x: Any, lengths: Any) -> Any: ...
    def cat(self, parts: Sequence[Any]) -> Any: ...
    def stack(self, parts: Sequence[Any]) -> Any: ...


class NumpyOps:
    @staticmethod
    def masks(lengths: Any, steps: int) -> np.ndarray:
        return (np.arange(steps)[:, None] < np.asarray(lengths)[None, :])[..., None]

    @staticmethod
    def reverse(x: np.ndarray, lengths: Any) -> np.ndarray:
        if lengths is None:
            return x[::-1]
        index = reverse_index(np.asarray(lengths), x.shape[0])
        return np.take_along_axis(x, index[..., None], axis=0)

    @staticmethod
    def cat(parts: Sequence[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)

    @staticmethod
    def stack(parts: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack(parts)


class TorchOps:
    @staticmethod
    def masks(lengths: Any, steps: int) -> Any:
        import torch

        return (torch.arange(steps, device=lengths.device)[:, None] < lengths[None, :])[..., None]

    @staticmethod
    def reverse(x: Any, lengths: Any) -> Any:
        import torch

        if lengths is None:
            return x.flip(0)
        index = torch.as_tensor(reverse_index(lengths.cpu().numpy(), x.shape[0]), device=x.device)
        return torch.gather(x, 0, index[..., None].expand(-1, -1, x.shape[-1]))

    @staticmethod
    def cat(parts: Sequence[Any]) -> Any:
        import torch

        return parts[0] if len(parts) == 1 else torch.cat(list(parts), dim=-1)

    @staticmethod
    def stack(parts: Sequence[Any]) -> Any:
        import torch

        return torch.stack(list(parts))


REVERSE_MODES = ("aligned", "over_padding", "not_realigned")
FEEDS = ("in_order", "swapped", "reverse_first")


def reverse_index(lengths: np.ndarray, steps: int) -> np.ndarray:
    """index[t, b] = lengths[b] - 1 - t inside the sequence, t on the padding."""
    t = np.arange(steps)[:, None]
    return np.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)


def forward_network(
    layer: LayerFunction,
    ops: ArrayOps,
    x: Any,
    states: Sequence[Any],
    layer_weights: Callable[[int, int], Mapping[str, Any]],
    num_layers: int,
    num_directions: int,
    lengths: Any = None,
    between_layers: Callable[[Any], Any] | None = None,
    *,
    reverse: str = "aligned",
    feed: str = "in_order",
) -> tuple[Any, tuple[Any, ...]]:
    """Run a time-major batched network; ``states`` are the stacked (L*D, B, size) states.

    The composition of the specs is the default. Deliberately wrong ones, for the diagnosis:
    ``reverse="over_padding"`` runs the reverse direction from the padded end of each
    sequence over its padding, ``reverse="not_realigned"`` leaves its outputs in processing
    order; ``feed="swapped"`` feeds the layers above the first the directions' outputs
    reverse first, ``feed="reverse_first"`` concatenates them so everywhere (the output too).
    """
    if reverse not in REVERSE_MODES or feed not in FEEDS:
        raise ValueError(f"reverse must be in {REVERSE_MODES} and feed in {FEEDS}")
    masks = ops.masks(lengths, x.shape[0]) if lengths is not None else None
    within = None if reverse == "over_padding" else lengths
    index_of = composition().index
    finals: list[list[Any]] = [[None] * (num_layers * num_directions) for _ in states]
    layer_input = x
    for layer_number in range(num_layers):
        outputs = []
        for direction in range(num_directions):
            index = index_of(layer_number, direction, num_directions)
            initial = tuple(state[index] for state in states)
            weights = layer_weights(layer_number, direction)
            if direction == 0:
                output, final = layer(layer_input, initial, **weights, masks=masks)
            else:
                source = ops.reverse(layer_input, within)
                step_masks = None if reverse == "over_padding" else masks
                output, final = layer(source, initial, **weights, masks=step_masks)
                output = ops.reverse(output, within)
                if reverse == "not_realigned":
                    output = ops.reverse(output, None)
            outputs.append(output)
            for kind, value in enumerate(final):
                finals[kind][index] = value
        last = layer_number == num_layers - 1
        swapped = feed == "reverse_first" or (feed == "swapped" and not last)
        layer_input = ops.cat(outputs[::-1] if swapped else outputs)
        if between_layers is not None and not last:
            layer_input = between_layers(layer_input)
    return layer_input, tuple(ops.stack(values) for values in finals)
