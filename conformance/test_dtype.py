"""Dtypes: float64, float32, bfloat16 and float16 kept, each within its tolerance of the gold."""

import pytest

from rnnspec.checks import dtype

pytestmark = pytest.mark.dtype


@pytest.mark.cases(provider=dtype.cases)
def test_dtype(implementation, case, record):
    dtype.check_dtype(implementation, case, record)


@pytest.mark.cases(provider=dtype.autocast_cases)
def test_autocast(implementation, case, record):
    dtype.check_autocast(implementation, case, record)
