"""Robustness: size-one dimensions, no mutation, determinism, chunks, packing, dropout,
malformed input rejected, unbatched input."""

from conformance import suite

globals().update(suite.tests("robustness"))
