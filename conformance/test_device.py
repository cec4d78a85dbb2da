"""Devices: meta (state created on the wrong device), hx=None on the CPU, CUDA, mixed devices."""

from conformance import suite

globals().update(suite.tests("device"))
