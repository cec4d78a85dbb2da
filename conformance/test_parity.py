"""Forward parity against the float64 gold: output and final states."""

import pytest

from rnnspec.checks import parity

pytestmark = pytest.mark.parity


@pytest.mark.cases(provider=parity.cases)
def test_forward(implementation, case, record):
    parity.check_forward(implementation, case, record)


@pytest.mark.cases(provider=parity.square_cases)
def test_forward_square(implementation, case, record):
    parity.check_forward(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=parity.large_cases)
def test_forward_large(implementation, case, record):
    parity.check_forward(implementation, case, record, diagnose=False)
