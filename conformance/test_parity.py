"""Forward parity against the float64 gold: output and final states."""

from conformance import suite

globals().update(suite.tests("parity"))
