"""What maps to torch.nn comes from the specs' ``torch`` tables, user specs included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from reference import nn
from rnnspec import implementations, spec, torch_equivalents
from rnnspec.config import RNNConfig
from rnnspec.errors import ConfigError
from rnnspec.protocol import Capabilities, Implementation

ELMAN = spec.SPECS_DIR / "elman.toml"
ELMAN_TORCH = 'torch = { module = "RNN", nonlinearity = "tanh" }'


def register_twin(torch_table: str) -> None:
    """The shipped Elman spec under the kind ``twin``, with ``torch_table`` for its base."""
    text = ELMAN.read_text()
    assert text.count('name = "elman"') == 1 and text.count(ELMAN_TORCH) == 1
    text = text.replace('name = "elman"', 'name = "twin"').replace(ELMAN_TORCH, torch_table)
    spec.register(spec.loads(text, "twin.toml"))


def test_the_shipped_specs_map_what_torch_nn_has() -> None:
    assert torch_equivalents.cells() == {"elman", "elman:relu", "gru", "lstm"}
    assert implementations.torch_nn().capabilities.cells == torch_equivalents.cells()
    assert Capabilities().cells == torch_equivalents.cells()


@pytest.mark.parametrize("cell", sorted(torch_equivalents.cells()))
def test_a_module_maps_back_to_its_cell(cell: str) -> None:
    module = torch_equivalents.module(RNNConfig(cell=cell))
    assert torch_equivalents.cell_of(module) == cell
    assert nn.from_torch(module).config.cell == cell


def test_a_user_spec_with_a_torch_table_counts() -> None:
    register_twin(ELMAN_TORCH)
    assert {"twin", "twin:relu"} <= torch_equivalents.cells()
    assert implementations.torch_nn().capabilities.declares("twin:relu")
    assert Implementation.from_module(torch.nn.RNN).capabilities.declares("twin")
    assert isinstance(torch_equivalents.module(RNNConfig(cell="twin")), torch.nn.RNN)
    assert torch_equivalents.cell_of(torch.nn.RNN(3, 2)) == "elman"  # shipped specs first


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_the_nonlinearity_comes_from_the_torch_table(nonlinearity: str) -> None:
    register_twin(f'torch = {{ module = "RNN", nonlinearity = "{nonlinearity}" }}')
    config = RNNConfig(cell="twin")
    assert torch_equivalents.kwargs(config)["nonlinearity"] == nonlinearity
    assert torch_equivalents.module(config).nonlinearity == nonlinearity


def test_a_torch_table_without_nonlinearity_passes_none() -> None:
    assert "nonlinearity" not in torch_equivalents.kwargs(RNNConfig(cell="lstm"))


def test_a_cell_without_a_torch_table_has_no_module() -> None:
    assert "gru:reset_before" not in torch_equivalents.cells()
    with pytest.raises(ConfigError, match="gru:reset_before has no torch.nn equivalent"):
        torch_equivalents.module(RNNConfig(cell="gru:reset_before"))


@pytest.mark.parametrize("name", ["Transformer", "__class__", "rnn"])
def test_a_torch_table_naming_another_class_is_one_clear_error(name: str) -> None:
    register_twin(f'torch = {{ module = "{name}" }}')
    with pytest.raises(ConfigError, match=f"torch module '{name}' is not one of torch.nn.RNN"):
        torch_equivalents.module(RNNConfig(cell="twin"))
    assert torch_equivalents.cell_of(torch.nn.GRU(3, 2)) == "gru"


def test_the_reference_needs_no_candidate_protocol() -> None:
    tree = ast.parse(Path(nn.__file__).read_text())
    imported = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert "rnnspec.torch_equivalents" in imported
    assert not any(name.startswith("rnnspec.protocol.") for name in imported)
