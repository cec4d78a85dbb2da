"""Devices: meta (state created on the wrong device), hx=None on the CPU, CUDA, mixed devices."""

import pytest

from rnnspec.checks import device

pytestmark = pytest.mark.device


@pytest.mark.cases(provider=device.meta_cases)
def test_meta(implementation, case, record):
    device.check_meta(implementation, case, record)


@pytest.mark.cases(provider=device.zero_state_cases)
def test_zero_state(implementation, case, record):
    device.check_zero_state(implementation, case, record)


@pytest.mark.cases(provider=device.cuda_cases)
def test_cuda(implementation, case, record):
    device.check_cuda(implementation, case, record)


@pytest.mark.cases(provider=device.mixed_cases)
def test_mixed_devices_raise(implementation, case, record):
    device.check_mixed_devices(implementation, case, record)
