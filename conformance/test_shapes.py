"""Shapes of output, h_n and c_n in every input layout: time-major, batch_first, unbatched, packed."""

from conformance import suite

globals().update(suite.tests("shapes"))
