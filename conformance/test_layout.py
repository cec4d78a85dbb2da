"""State layout: h_n[layer * D + direction] slice by slice, and outputs aligned to final states."""

import pytest

from rnnspec.checks import layout

pytestmark = pytest.mark.layout


@pytest.mark.cases(provider=layout.cases)
def test_layout(implementation, case, record):
    layout.check_layout(implementation, case, record)
