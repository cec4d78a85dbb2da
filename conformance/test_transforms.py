"""Transforms: torch.compile, torch.export, TorchScript, ONNX Runtime, functional_call, vmap.

compile, export and ONNX take seconds per case: they are marked slow and run only when -m
names ``slow`` (``-m "transforms and (slow or not slow)"`` runs the whole category).
"""

from conformance import suite

globals().update(suite.tests("transforms"))
