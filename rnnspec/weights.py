"""Random canonical weights for checks: distinct per gate, per layer and per direction."""

from __future__ import annotations

import numpy as np

from rnnspec.config import RNNConfig


def random_weights(config: RNNConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Float64 weights drawn like PyTorch's init, U(-1/sqrt(H), 1/sqrt(H)).

    Each tensor gets its own stream, so no two gates, layers or directions share values
    and a swapped gate or direction cannot pass by symmetry.
    """
    bound = 1.0 / np.sqrt(config.hidden_size)
    rng = np.random.default_rng(seed)
    return {
        name: rng.uniform(-bound, bound, size=shape)
        for name, shape in config.parameter_shapes().items()
    }


def random_input(config: RNNConfig, steps: int, batch: int | None, seed: int = 0) -> np.ndarray:
    """Input of shape (T, B, I), (B, T, I) when batch_first, or (T, I) when unbatched."""
    rng = np.random.default_rng(seed + 1_000_003)
    if batch is None:
        return rng.standard_normal((steps, config.input_size))
    shape = (batch, steps) if config.batch_first else (steps, batch)
    return rng.standard_normal((*shape, config.input_size))


def random_state(config: RNNConfig, batch: int | None, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Initial states (h0[, c0]) in the canonical layout, values in (-1, 1)."""
    rng = np.random.default_rng(seed + 2_000_029)
    shapes = config.state_shapes(config.resolve(), batch)
    return tuple(rng.uniform(-1.0, 1.0, size=shape) for shape in shapes)
