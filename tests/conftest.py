"""Shared settings for the kit's own tests."""

import builtins
from collections.abc import Iterator

import pytest
import torch

from rnnspec import spec


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """The tests use tiny tensors: extra intra-op threads only spin, and on two busy cores
    (pytest -n 2, or a loaded CI machine) they make the suite up to ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def no_leaked_specs() -> Iterator[None]:
    """A spec registered by one test is gone for the next."""
    with spec.isolated_registry():
        yield


@pytest.fixture
def no_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """``eval`` and ``exec`` raise: the code under test must not run spec text as Python."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("spec text was evaluated")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
