"""Robustness: size-one dimensions, no mutation, determinism, chunks, packing, dropout,
malformed input rejected, unbatched input."""

import pytest

from rnnspec.checks import robustness

pytestmark = pytest.mark.robustness


@pytest.mark.cases(provider=robustness.keep_dimension_cases)
def test_keeps_dimensions(implementation, case, record):
    robustness.check_keeps_dimensions(implementation, case, record)


@pytest.mark.cases(provider=robustness.mutation_cases)
def test_no_mutation(implementation, case, record):
    robustness.check_no_mutation(implementation, case, record)


@pytest.mark.cases(provider=robustness.determinism_cases)
def test_deterministic(implementation, case, record):
    robustness.check_deterministic(implementation, case, record)


@pytest.mark.cases(provider=robustness.chunk_cases)
def test_chunked_with_carried_state(implementation, case, record):
    robustness.check_chunked(implementation, case, record)


@pytest.mark.cases(provider=robustness.packed_cases)
def test_packed_equals_each_sequence_alone(implementation, case, record):
    robustness.check_packed(implementation, case, record)


@pytest.mark.cases(provider=robustness.dropout_cases)
def test_dropout_eval(implementation, case, record):
    robustness.check_dropout_eval(implementation, case, record)


@pytest.mark.cases(provider=robustness.dropout_cases)
def test_dropout_training(implementation, case, record):
    robustness.check_dropout_training(implementation, case, record)


@pytest.mark.cases(provider=robustness.rejection_cases)
def test_rejects_bad_state(implementation, case, record):
    robustness.check_rejects_bad_state(implementation, case, record)


@pytest.mark.cases(provider=robustness.input_rank_cases)
def test_rejects_4d_input(implementation, case, record):
    robustness.check_rejects_4d_input(implementation, case, record)


@pytest.mark.cases(provider=robustness.unbatched_cases)
def test_unbatched(implementation, case, record):
    robustness.check_unbatched(implementation, case, record)


@pytest.mark.cases(provider=robustness.noncontiguous_cases)
def test_noncontiguous(implementation, case, record):
    robustness.check_noncontiguous(implementation, case, record)


@pytest.mark.cases(provider=robustness.weight_update_cases)
def test_weight_update(implementation, case, record):
    robustness.check_weight_update(implementation, case, record)


@pytest.mark.cases(provider=robustness.short_packed_cases)
def test_packed_short_sequences(implementation, case, record):
    robustness.check_packed(implementation, case, record)


@pytest.mark.cases(provider=robustness.packed_cases)
def test_padding_zero(implementation, case, record):
    robustness.check_padding_zero(implementation, case, record)


@pytest.mark.cases(provider=robustness.batch_invariance_cases)
def test_batch_invariant(implementation, case, record):
    robustness.check_batch_invariant(implementation, case, record)


@pytest.mark.cases(provider=robustness.seeded_dropout_cases)
def test_dropout_seeded(implementation, case, record):
    robustness.check_dropout_seeded(implementation, case, record)
