"""NumPy: host arrays in float64 or float32, forward checks only."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from rnnspec.frameworks import Framework

if TYPE_CHECKING:
    from rnnspec.protocol import Capabilities


class NumpyFramework(Framework):
    """Arrays are ``np.ndarray`` on the CPU; no autodiff, no packed sequences."""

    name = "numpy"
    title = "NumPy"

    def restrict(self, declared: Capabilities) -> Capabilities:
        return replace(
            declared,
            gradients=False,
            packed=False,
            dtypes=declared.dtypes & {"float64", "float32"},
            devices=frozenset({"cpu"}),
            transforms=frozenset(),  # every transform is torch's
        )
