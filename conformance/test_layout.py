"""State layout: h_n[layer * D + direction] slice by slice, and outputs aligned to final states."""

from conformance import suite

globals().update(suite.tests("layout"))
