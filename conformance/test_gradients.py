"""Gradients of input, initial states and every weight against the float64 reference."""

import pytest

from rnnspec.checks import gradients

pytestmark = pytest.mark.gradients


@pytest.mark.cases(provider=gradients.cases)
def test_gradients(implementation, case, record):
    gradients.check_gradients(implementation, case, record)


@pytest.mark.cases(provider=gradients.higher_order_cases)
def test_jvp(implementation, case, record):
    gradients.check_jvp(implementation, case, record)


@pytest.mark.cases(provider=gradients.double_backward_cases)
def test_double_backward(implementation, case, record):
    gradients.check_double_backward(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=gradients.large_cases)
def test_gradients_large(implementation, case, record):
    gradients.check_gradients(implementation, case, record)
