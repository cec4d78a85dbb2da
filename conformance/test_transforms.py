"""Transforms: torch.compile, torch.export, TorchScript, ONNX Runtime, functional_call, vmap.

compile, export and ONNX take seconds per case: they are marked slow and run only when -m
names ``slow`` (``-m "transforms and (slow or not slow)"`` runs the whole category).
"""

import pytest

from rnnspec.checks import transforms

pytestmark = pytest.mark.transforms


@pytest.mark.slow
@pytest.mark.cases(provider=transforms.compile_cases)
def test_compile(implementation, case, record):
    transforms.check_compile(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=transforms.inductor_cases)
def test_compile_inductor(implementation, case, record):
    transforms.check_compile_inductor(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=transforms.export_cases)
def test_export(implementation, case, record):
    transforms.check_export(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=transforms.compile_cases)
def test_script(implementation, case, record):
    transforms.check_script(implementation, case, record)


@pytest.mark.slow
@pytest.mark.cases(provider=transforms.onnx_cases)
def test_onnx(implementation, case, record):
    transforms.check_onnx(implementation, case, record)


@pytest.mark.cases(provider=transforms.compile_cases)
def test_functional_call(implementation, case, record):
    transforms.check_functional_call(implementation, case, record)


@pytest.mark.cases(provider=transforms.vmap_cases)
def test_vmap(implementation, case, record):
    transforms.check_vmap(implementation, case, record)
