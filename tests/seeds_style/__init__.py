"""Candidates written the way the seed notebooks write RNNs, each with the adapter a user
would write to register it: narrow envelopes (one layer, one layout, no h0, one bias,
float32 only, unbatched only) and the seeds' bugs (no nonlinearity on the recurrence, a
``.squeeze()``, a zero state made without ``device=``). ``tests/test_envelope.py`` runs
the conformance checks on each, inside the envelope it declares.
"""
