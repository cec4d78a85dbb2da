"""Fixed-weight candidates: a trained or exported network checked with its own weights.

Such a candidate's ``read_weights()`` gives its weights in canonical form. Their names and
shapes, with the one cell it declares, describe its configuration (:func:`config`); every
case of the suite is moved onto that configuration (:func:`fit`), keeping the run around
it (T, B, layout, dtype, packing, h0 given or not), and the gold is computed from those
weights (:func:`weights`, used by ``harness.make_inputs``).

A saved model (``model.onnx``, ``model.keras``) is judged against the network it was
exported from when a source file sits next to it (``model.npz``, written by
:func:`save_source` from the original's cell and canonical weights, e.g. a
``torch.nn.GRU``'s ``state_dict()``): then an exporter that permutes gates wrongly, drops
an attribute or corrupts an initializer fails parity. Without one, the model is judged
against its own weights and attributes, which checks the runtime and the graph around the
recurrent nodes but not how the weights got there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rnnspec.cases import Case
from rnnspec.config import RNNConfig
from rnnspec.errors import ImplementationError
from rnnspec.protocol import Implementation

LAYER = re.compile(r"^weight_ih_l(\d+)(_reverse)?$")


def is_fixed(impl: Implementation | None) -> bool:
    return impl is not None and impl.read_weights is not None


def weights(impl: Implementation) -> dict[str, np.ndarray]:
    """The candidate's own weights as float64 arrays."""
    assert impl.read_weights is not None
    try:
        read = impl.read_weights()
        return {name: np.asarray(value, dtype=np.float64) for name, value in read.items()}
    except Exception as error:  # the candidate's reader can raise anything
        raise ImplementationError(
            f"read_weights raised {type(error).__name__}: {error}", impl.name
        ) from error


def config(impl: Implementation) -> RNNConfig:
    """The configuration the candidate's weights describe; an error names what does not fit."""
    found = weights(impl)
    layers = [LAYER.match(name) for name in found]
    indices = [int(match.group(1)) for match in layers if match]
    if not indices or "weight_hh_l0" not in found:
        raise ImplementationError(
            f"read_weights gave no canonical weight_ih_l0/weight_hh_l0: {sorted(found)}",
            impl.name,
        )
    (cell,) = impl.capabilities.cells
    projection = found.get("weight_hr_l0")
    described = RNNConfig(
        cell=cell,
        input_size=found["weight_ih_l0"].shape[1],
        hidden_size=found["weight_hh_l0"].shape[1] if projection is None else projection.shape[1],
        num_layers=max(indices) + 1,
        bidirectional=any(match.group(2) for match in layers if match),
        bias="bias_ih_l0" in found,
        proj_size=0 if projection is None else projection.shape[0],
    )
    expected = described.parameter_shapes()
    given = {name: value.shape for name, value in found.items()}
    if given != expected:
        raise ImplementationError(
            f"read_weights' names and shapes do not make a {described.describe()}: got "
            f"{given}, expected {expected}",
            impl.name,
        )
    return described


def fit(case: Case, fixed: RNNConfig) -> Case:
    """``case`` run on the fixed configuration (its input layout and dropout kept)."""
    config = fixed.replace(batch_first=case.config.batch_first, dropout=case.config.dropout)
    return case.replace(config=config)


def fit_all(impl: Implementation, cases: Iterable[Case]) -> list[Case]:
    """The cases of the candidate's cell moved onto its configuration, duplicates dropped;
    cases of other cells stay as they are (they are skipped: the cell is not declared)."""
    fixed = config(impl)
    fitted = [fit(case, fixed) if case.config.cell == fixed.cell else case for case in cases]
    return list({case.id(): case for case in fitted}.values())


def save_source(path: Path | str, cell: str, weights: Mapping[str, Any]) -> Path:
    """Write the source network of a saved model: its cell and canonical weights (tensors
    or arrays, PyTorch's names) as ``.npz``; :func:`source_path` names where it belongs."""
    arrays: dict[str, Any] = {name: _array(value) for name, value in weights.items()}
    arrays["__cell__"] = np.array(cell)
    path = Path(path)
    with path.open("wb") as handle:
        np.savez(handle, **arrays)
    return path


def source_path(model: Path) -> Path:
    """Where the source network of ``model`` is looked for: ``model.npz`` beside it."""
    return model.with_suffix(".npz")


def load_source(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """The cell and float64 canonical weights written by :func:`save_source`."""
    with np.load(path, allow_pickle=False) as data:
        cell = str(data["__cell__"])
        return cell, {name: data[name].astype(np.float64) for name in data if name != "__cell__"}


def _array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def judged_against(
    model: Path, cell: str, weights: dict[str, np.ndarray]
) -> tuple[str, dict[str, np.ndarray], str]:
    """The cell and weights a saved model is judged against, and where they come from: its
    source network (:func:`source_path`) when there is one, else what was read from it."""
    source = source_path(model)
    if not source.is_file():
        return cell, weights, "its own weights and attributes"
    source_cell, source_weights = load_source(source)
    read = {name: value.shape for name, value in weights.items()}
    given = {name: value.shape for name, value in source_weights.items()}
    if read != given:
        raise ImplementationError(
            f"{source.name} holds {given}, but the model has {read}", str(model)
        )
    return source_cell, source_weights, f"its source network {source.name}"
