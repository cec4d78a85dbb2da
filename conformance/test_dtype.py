"""Dtypes: float64, float32, bfloat16 and float16 kept, each within its tolerance of the gold."""

from conformance import suite

globals().update(suite.tests("dtype"))
