"""Gradients of input, initial states and every weight against the float64 reference."""

import pytest

from rnnspec.checks import gradients

pytestmark = pytest.mark.gradients


@pytest.mark.cases(provider=gradients.cases)
def test_gradients(implementation, case, record):
    gradients.check_gradients(implementation, case, record)
