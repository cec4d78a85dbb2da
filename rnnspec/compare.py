"""Compare a candidate's array to the expected one and fail with one message shape:

``what[index]=got, but should be expected (atol=..., rtol=...) [config]``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rnnspec.errors import RnnSpecError
from rnnspec.tolerance import Tolerance


class CheckFailure(RnnSpecError, AssertionError):
    """A check found the candidate wrong; ``kind`` says which kind of wrong (``mismatch``,
    ``shape``, ``raised``, ...); ``details`` carries data (the failed comparison, a diagnosis)."""

    def __init__(self, message: str, kind: str = "mismatch", **details: Any) -> None:
        if "category" in details:  # the name of ``kind`` before 2026-11
            raise TypeError("CheckFailure takes kind=..., not category=...")
        super().__init__(message)
        self.kind = kind
        self.details = details


@dataclass
class Comparison:
    """The worst element of one comparison, kept for the reports."""

    what: str
    max_abs: float
    max_rel: float
    tolerance: Tolerance
    index: tuple[int, ...] | None
    got: float | None
    expected: float | None
    passed: bool


def to_numpy(value: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor (any device, dtype) or array."""
    if hasattr(value, "detach"):
        value = value.detach()
        if value.device.type != "cpu":
            value = value.cpu()
        return value.double().numpy()
    return np.asarray(value, dtype=np.float64)


def dtype_name(value: Any) -> str:
    """``float32`` for ``torch.float32`` and ``np.float32`` alike."""
    return str(value.dtype).removeprefix("torch.")


def check_dtype(value: Any, dtype: str, what: str, config: str) -> None:
    """``value`` has ``dtype``: checked before any value is compared, so that a float32
    result never reads as ``-0.960371, but should be -0.960371``."""
    __tracebackhide__ = True
    found = dtype_name(value)
    if found != dtype:
        raise CheckFailure(
            f"{what} has dtype {found}, but should have {dtype} (the input's dtype) [{config}]",
            kind="dtype",
        )


def allowed(expected: np.ndarray, tolerance: Tolerance) -> np.ndarray:
    """The largest ``|got - expected|`` allowed, per element: ``atol + rtol * |expected|``."""
    return tolerance.atol + tolerance.rtol * np.abs(expected)


def within(got: Any, expected: Any, tolerance: Tolerance) -> bool:
    """Whether every element of ``got`` is within ``tolerance`` of ``expected`` (no failure)."""
    got_array, expected_array = to_numpy(got), to_numpy(expected)
    return bool(np.all(np.abs(got_array - expected_array) <= allowed(expected_array, tolerance)))


def _index(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def compare(got: Any, expected: Any, what: str, tolerance: Tolerance, config: str) -> Comparison:
    """Compare ``got`` to ``expected``; raise :class:`CheckFailure` when outside tolerance."""
    __tracebackhide__ = True
    got_array = to_numpy(got)
    expected_array = to_numpy(expected)
    if got_array.shape != expected_array.shape:
        raise CheckFailure(
            f"{what} has shape {tuple(got_array.shape)}, but should have "
            f"{tuple(expected_array.shape)} [{config}]",
            kind="shape",
        )
    finite = np.isfinite(got_array)
    if not finite.all():
        first = tuple(np.argwhere(~finite)[0])
        raise CheckFailure(
            f"{what}{_index(first)}={got_array[first]} is not finite, but should be "
            f"{expected_array[first]:.6g} ({np.count_nonzero(~finite)} non-finite of "
            f"{got_array.size}) ({tolerance}) [{config}]",
            kind="non-finite",
        )
    if got_array.size == 0:
        return Comparison(what, 0.0, 0.0, tolerance, None, None, None, True)
    difference = np.abs(got_array - expected_array)
    excess = difference - allowed(expected_array, tolerance)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))
    relative = difference / np.maximum(np.abs(expected_array), np.finfo(np.float64).tiny)
    result = Comparison(
        what,
        float(difference.max()),
        float(relative.max()),
        tolerance,
        worst,
        float(got_array[worst]),
        float(expected_array[worst]),
        bool(excess[worst] <= 0),
    )
    if not result.passed:
        count = int(np.count_nonzero(excess > 0))
        raise CheckFailure(
            f"{what}{_index(worst)}={result.got:.6g}, but should be {result.expected:.6g} "
            f"({tolerance}; max abs error {result.max_abs:.3g}, {count} of "
            f"{difference.size} elements outside) [{config}]",
            comparison=result,
        )
    return result
