"""The conformance suite as data: every check declared once, here.

A check is a function ``check(impl, case, record, **options)`` and a case provider
``cases(cells)`` in ``rnnspec/checks/<category>.py``, both named below. Everything else is
derived from :data:`CHECKS`: the pytest modules ``conformance/test_<category>.py`` (one test
per check, so the check ids are ``test_<category>.py::<name>[<case id>]``), the markers, the
categories the reports group by, and the kit's zoo and envelope tests. A category module is
imported only when one of its checks is used, so reading the categories imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rnnspec.errors import Unsupported

if TYPE_CHECKING:
    from rnnspec.cases import Case, Provider
    from rnnspec.checks import Record
    from rnnspec.protocol import Implementation


@dataclass(frozen=True)
class Check:
    """One check of the suite.

    ``category``: its module ``rnnspec/checks/<category>.py`` and its pytest marker;
    ``name``: its test, ``conformance/test_<category>.py::<name>``; ``check`` and ``cases``:
    the names of its function and its case provider in the module; ``slow``: run only when
    ``-m`` names ``slow``; ``options``: keyword arguments for the function; ``needs``: the
    optional libraries it cannot run without (missing, every case is skipped).
    """

    category: str
    name: str
    check: str
    cases: str = "cases"
    slow: bool = False
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    needs: tuple[str, ...] = ()

    def module(self) -> ModuleType:
        return importlib.import_module(f"rnnspec.checks.{self.category}")

    @property
    def provider(self) -> Provider:
        """The case provider, as :func:`rnnspec.cases.for_envelope` takes it."""
        provider: Provider = getattr(self.module(), self.cases)
        return provider

    @property
    def function(self) -> Callable[..., None]:
        function: Callable[..., None] = getattr(self.module(), self.check)
        return function

    def run(self, impl: Implementation, case: Case, record: Record) -> None:
        """Run the check on one case: raises ``Unsupported`` (a skip) or ``CheckFailure``."""
        __tracebackhide__ = True
        for library in self.needs:
            try:
                importlib.import_module(library)
            except ImportError:
                raise Unsupported(f"{library} is not installed") from None
        self.function(impl, case, record, **self.options)


CHECKS: tuple[Check, ...] = (
    Check("shapes", "test_shapes", "check_shapes"),
    Check("layout", "test_layout", "check_layout"),
    Check("parity", "test_forward", "check_forward"),
    Check("parity", "test_forward_square", "check_forward", "square_cases"),
    Check(  # at T = 1000 the diagnosis of a failure would take minutes
        "parity",
        "test_forward_large",
        "check_forward",
        "large_cases",
        slow=True,
        options={"diagnose": False},
    ),
    Check("gradients", "test_gradients", "check_gradients"),
    Check("gradients", "test_jvp", "check_jvp", "higher_order_cases"),
    Check("gradients", "test_double_backward", "check_double_backward", "double_backward_cases"),
    Check("gradients", "test_gradients_large", "check_gradients", "large_cases", slow=True),
    Check("device", "test_meta", "check_meta", "meta_cases"),
    Check("device", "test_zero_state", "check_zero_state", "zero_state_cases"),
    Check("device", "test_cuda", "check_cuda", "cuda_cases"),
    Check("device", "test_mixed_devices_raise", "check_mixed_devices", "mixed_cases"),
    Check("dtype", "test_dtype", "check_dtype"),
    Check("dtype", "test_autocast", "check_autocast", "autocast_cases"),
    Check("robustness", "test_keeps_dimensions", "check_keeps_dimensions", "keep_dimension_cases"),
    Check("robustness", "test_no_mutation", "check_no_mutation", "mutation_cases"),
    Check("robustness", "test_deterministic", "check_deterministic", "determinism_cases"),
    Check("robustness", "test_chunked_with_carried_state", "check_chunked", "chunk_cases"),
    Check("robustness", "test_packed_equals_each_sequence_alone", "check_packed", "packed_cases"),
    Check("robustness", "test_dropout_eval", "check_dropout_eval", "dropout_cases"),
    Check("robustness", "test_dropout_training", "check_dropout_training", "dropout_cases"),
    Check("robustness", "test_rejects_bad_state", "check_rejects_bad_state", "rejection_cases"),
    Check("robustness", "test_rejects_4d_input", "check_rejects_4d_input", "input_rank_cases"),
    Check("robustness", "test_unbatched", "check_unbatched", "unbatched_cases"),
    Check("robustness", "test_noncontiguous", "check_noncontiguous", "noncontiguous_cases"),
    Check("robustness", "test_weight_update", "check_weight_update", "weight_update_cases"),
    Check("robustness", "test_packed_short_sequences", "check_packed", "short_packed_cases"),
    Check("robustness", "test_padding_zero", "check_padding_zero", "packed_cases"),
    Check("robustness", "test_batch_invariant", "check_batch_invariant", "batch_invariance_cases"),
    Check("robustness", "test_dropout_seeded", "check_dropout_seeded", "seeded_dropout_cases"),
    # compile, export, TorchScript and ONNX take seconds per case
    Check("transforms", "test_compile", "check_compile", "compile_cases", slow=True),
    Check(
        "transforms", "test_compile_inductor", "check_compile_inductor", "inductor_cases", slow=True
    ),
    Check("transforms", "test_export", "check_export", "export_cases", slow=True),
    Check("transforms", "test_script", "check_script", "compile_cases", slow=True),
    Check(
        "transforms",
        "test_onnx",
        "check_onnx",
        "onnx_cases",
        slow=True,
        needs=("onnxruntime", "onnxscript"),
    ),
    Check("transforms", "test_functional_call", "check_functional_call", "compile_cases"),
    Check("transforms", "test_vmap", "check_vmap", "vmap_cases"),
)

CHECK_CATEGORIES = tuple(dict.fromkeys(check.category for check in CHECKS))
"""The categories of the checks, in the order the reports list them."""

SPEED = "speed"
"""``conformance/test_speed.py``: timings against torch.nn through pytest-benchmark, run
only with ``-m speed``. Not a :class:`Check`: its cases are a sweep per device and mode,
its fixture the benchmark, and it fails only when the candidate raises."""

CATEGORIES = (*CHECK_CATEGORIES, SPEED)
"""Every category of the conformance suite: the markers ``-m`` may name, what reports group by."""


def checks(category: str) -> tuple[Check, ...]:
    """The category's checks, in the order they are declared (and collected)."""
    found = tuple(check for check in CHECKS if check.category == category)
    if not found:
        raise ValueError(f"no checks in category {category!r} (known: {CHECK_CATEGORIES})")
    return found
