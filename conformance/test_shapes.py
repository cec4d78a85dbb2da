"""Shapes of output, h_n and c_n in every input layout: time-major, batch_first, unbatched, packed."""

import pytest

from rnnspec.checks import shapes

pytestmark = pytest.mark.shapes


@pytest.mark.cases(provider=shapes.cases)
def test_shapes(implementation, case, record):
    shapes.check_shapes(implementation, case, record)
