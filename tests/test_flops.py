"""FLOPs derived from the spec's equations, against counts worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rnnspec import flops, spec
from rnnspec.config import RNNConfig

USER_SPECS = Path(__file__).parent / "specs"


def described(config: RNNConfig, steps: int, batch: int) -> list[tuple[Any, ...]]:
    """Each product of the network as (what, shape, count, recurrent)."""
    return [(p.what, p.shape, p.count, p.recurrent) for p in flops.products(config, steps, batch)]


def test_lstm_by_hand() -> None:
    """I=5 H=4 T=7 B=3: x-products 2*21*5*16, h-products 2*3*4*16 per step."""
    config = RNNConfig(cell="lstm", input_size=5, hidden_size=4)
    assert flops.forward_flops(config, 7, 3) == 2 * 21 * 5 * 16 + 7 * 2 * 3 * 4 * 16 == 6048
    assert described(config, 7, 3) == [
        ("weight_ih[i,f,g,o] @ x", (21, 5, 16), 1, False),
        ("weight_hh[i,f,g,o] @ h", (3, 4, 16), 7, True),
    ]


def test_gru_and_elman_by_hand() -> None:
    gru = RNNConfig(cell="gru", input_size=6, hidden_size=5)
    assert flops.forward_flops(gru, 4, 2) == 2 * 8 * 6 * 15 + 4 * 2 * 2 * 5 * 15 == 2640
    elman = RNNConfig(cell="elman", input_size=6, hidden_size=5)
    assert flops.forward_flops(elman, 4, 2) == 2 * 8 * 6 * 5 + 4 * 2 * 2 * 5 * 5 == 880


def test_stacked_bidirectional_projected_lstm_by_hand() -> None:
    """Layer 1 reads D*P = 6 inputs; W_hh is (4H, P); W_hr adds 2*B*H*P per step."""
    config = RNNConfig(
        cell="lstm", input_size=5, hidden_size=4, num_layers=2, bidirectional=True, proj_size=3
    )
    steps, batch = 7, 3
    recurrent = steps * (2 * batch * 3 * 16 + 2 * batch * 4 * 3)
    layer0 = 2 * 21 * 5 * 16 + recurrent
    layer1 = 2 * 21 * 6 * 16 + recurrent
    assert flops.forward_flops(config, steps, batch) == 2 * (layer0 + layer1) == 24864
    assert [p.what for p in flops.layer_products(config, 1, steps, batch)] == [
        "weight_ih[i,f,g,o] @ x",
        "weight_hh[i,f,g,o] @ h",
        "weight_hr @ h",
    ]


def test_products_follow_the_equations_not_the_cell_kind() -> None:
    """GRU reset_before multiplies (r * h): a second recurrent product, same FLOPs."""
    before = RNNConfig(cell="gru:reset_before", input_size=6, hidden_size=5)
    assert described(before, 4, 2) == [
        ("weight_ih[r,z,n] @ x", (8, 6, 15), 1, False),
        ("weight_hh[r,z] @ h", (2, 5, 10), 4, True),
        ("weight_hh[n] @ (r * h)", (2, 5, 5), 4, True),
    ]
    assert flops.forward_flops(before, 4, 2) == 2640
    coupled = RNNConfig(cell="lstm:coupled", input_size=5, hidden_size=4)
    assert flops.forward_flops(coupled, 7, 3) == 2 * 21 * 5 * 12 + 7 * 2 * 3 * 4 * 12


def test_user_spec() -> None:
    """The minimal gated unit of tests/specs: n's product reads f * h, a product of its own."""
    spec.register(spec.load(USER_SPECS / "mgu.toml"))
    config = RNNConfig(cell="mgu", input_size=3, hidden_size=2)
    assert described(config, 2, 1) == [
        ("weight_ih[f,n] @ x", (2, 3, 4), 1, False),
        ("weight_hh[f] @ h", (1, 2, 2), 2, True),
        ("weight_hh[n] @ (f * h)", (1, 2, 2), 2, True),
    ]
    assert flops.forward_flops(config, 2, 1) == 2 * 2 * 3 * 4 + 2 * (2 * 2 * 2) * 2 == 80


def test_an_unstacked_weight_counts_its_whole_shape() -> None:
    loaded = spec.loads(
        '[cell]\nname = "plain"\nvariant = "default"\ntitle = "Plain"\nsummary = "s"\n'
        'gates = ["h"]\noutput = "h"\n[state.h]\nsize = "hidden"\n'
        '[parameters.w]\nshape = ["hidden", "input"]\n'
        '[parameters.u]\nshape = ["hidden", "hidden"]\n'
        '[equations]\nh = "tanh(w @ x + u @ h)"\n',
        "plain.toml",
    )
    products = flops.cell_products(loaded.cell())
    assert [(param.name, blocks) for param, _, blocks in products] == [("w", ("",)), ("u", ("",))]


def test_forward_backward_is_three_forwards() -> None:
    config = RNNConfig(cell="gru", input_size=6, hidden_size=5)
    assert flops.flops(config, 4, 2, "forward_backward") == 3 * 2640
    assert flops.flops(config, 4, 2, "forward") == 2640
    with pytest.raises(ValueError, match="mode must be"):
        flops.flops(config, 4, 2, "backward")
