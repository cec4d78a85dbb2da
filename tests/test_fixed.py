"""Fixed-weight candidates (read_weights): a trained torch.nn.GRU checked with its own weights."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import conformance
from rnnspec import fixed
from rnnspec.cases import make_case
from rnnspec.checks import ignore, parity
from rnnspec.compare import CheckFailure
from rnnspec.errors import ImplementationError
from rnnspec.protocol import Capabilities, Implementation


def trained(module: torch.nn.Module, cell: str = "gru", **capabilities: object) -> Implementation:
    """``module`` as it is (no weights loaded into it), on each case's device and dtype."""
    return Implementation(
        "trained",
        lambda config, device, dtype: copy.deepcopy(module).to(device=device, dtype=dtype),
        Capabilities(cells=frozenset({cell}), batch_first=False, **capabilities),
        read_weights=lambda: {name: p.detach().numpy() for name, p in module.named_parameters()},
    )


def test_a_trained_network_passes_forward_and_gradient_checks_with_its_own_weights(
    tmp_path: Path,
) -> None:
    torch.manual_seed(1)
    module = torch.nn.GRU(4, 6, num_layers=2, bidirectional=True).double()
    impl = trained(module)
    config = fixed.config(impl)
    assert (config.input_size, config.hidden_size, config.num_layers) == (4, 6, 2)
    report = tmp_path / "report"
    code = conformance.run(
        impl, "-q", "-m", "parity or gradients or layout", "--conformance-report", str(report)
    )
    summary = json.loads(report.with_suffix(".json").read_text())["summary"]
    assert code == 0
    assert all(summary[category].get("passed", 0) > 0 for category in ("parity", "gradients"))


def test_its_weights_are_the_gold_so_a_different_network_fails() -> None:
    torch.manual_seed(2)
    module = torch.nn.GRU(4, 6).double()
    claims = {name: p.detach().numpy() * 1.5 for name, p in module.named_parameters()}
    impl = Implementation(
        "liar",
        lambda config, device, dtype: copy.deepcopy(module).to(device=device, dtype=dtype),
        Capabilities(cells=frozenset({"gru"})),
        read_weights=lambda: claims,
    )
    case = fixed.fit(make_case("gru", steps=5, batch=3), fixed.config(impl))
    with pytest.raises(CheckFailure, match="but should be"):
        parity.check_forward(impl, case, ignore)


def test_read_weights_needs_one_cell_and_weights_that_make_a_network() -> None:
    with pytest.raises(ValueError, match="declare exactly its cell"):
        Implementation("x", lambda *a: None, Capabilities(), read_weights=dict)
    bad = Implementation(
        "bad",
        lambda *a: None,
        Capabilities(cells=frozenset({"lstm"})),
        read_weights=lambda: {"weight_ih_l0": np.zeros((12, 5)), "weight_hh_l0": np.zeros((12, 4))},
    )
    with pytest.raises(ImplementationError, match="do not make a lstm I=5 H=4"):
        fixed.config(bad)
