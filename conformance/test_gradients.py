"""Gradients of input, initial states and every weight against the float64 reference."""

from conformance import suite

globals().update(suite.tests("gradients"))
