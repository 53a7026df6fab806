"""Unit maps, operators' maps and the noise projection, in isolation."""

from __future__ import annotations

import random

import pytest
import torch

from kinherit.arch.spec import t
from kinherit.errors import KinheritError
from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.grow.maps import UnitMap
from kinherit.grow.noise import drawn_term, noise_term
from kinherit.grow.width import WIDTH_OPERATORS


def test_consumer_copy_divides_by_the_replication_count():
    m = UnitMap(3, [0, 1, 2, 0, 0])  # unit 0 copied 3 times
    x = torch.tensor([1.0, 2.0, 3.0])
    w = torch.randn(4, 3)
    wide = m.gather(w, 1, divide=True)  # (4, 5)
    torch.testing.assert_close(wide @ m.gather(x, 0, divide=False), w @ x)
    torch.testing.assert_close(m.readback(m.gather(x, 0, divide=False)), x)


def test_drawn_units_copy_nothing_and_their_rows_are_drawn():
    m = UnitMap(2, [0, 1, -1])
    assert m.gather(torch.tensor([5.0, 6.0]), 0, divide=False).tolist() == [5.0, 6.0, 0.0]  # the linear part
    assert m.drawn.tolist() == [False, False, True] and m.repeat.tolist() == [False, False, False]
    maps = {"hidden": UnitMap(3, [0, 1, 2, -1]), "ffn": m}
    drawn = drawn_term("w", (3, 4), t("w", "out:ffn", "in:hidden"), maps, mean=1.0, std=0.5, seed=0)  # (ffn, hidden)
    assert drawn[:2].abs().sum() == 0 and drawn[2, 3] == 0  # copied rows untouched; no weight from a drawn input
    assert bool((drawn[2, :3] != 0).all())  # the drawn unit's in-coming weights
    torch.testing.assert_close(drawn, drawn_term("w", (3, 4), t("w", "out:ffn", "in:hidden"), maps, 1.0, 0.5, 0))
    with pytest.raises(KinheritError, match="drops source units"):
        UnitMap(3, [0, 1])


@pytest.mark.parametrize("name", sorted(WIDTH_OPERATORS))
def test_every_operator_covers_every_source_unit(name):
    index = WIDTH_OPERATORS[name].unit_map(6, 12, random.Random(0), "hidden")
    assert len(index) == 12 and set(range(6)) <= set(index)
    counts = UnitMap(6, index).count
    assert int(counts.max()) - int(counts.min()) <= (6 if name == "zero" else 1)  # balanced maps


def test_noise_cancels_on_duplicated_inputs():
    spec = t("w", "out:ffn", "in:hidden")
    maps = {"hidden": UnitMap(4, [0, 1, 2, 3, 0, 1, 2, -1]), "ffn": UnitMap(3, [0, 1, 2])}
    noise = noise_term("w", (3, 8), 1, spec, maps, std=1.0, seed=0)
    x = maps["hidden"].gather(torch.randn(4), 0, divide=False)  # duplicated input
    torch.testing.assert_close(noise @ x, torch.zeros(3), atol=1e-6, rtol=0)
    assert noise[:, 3].abs().sum() == 0  # copied once: no noise
    assert noise[:, 7].abs().sum() == 0  # drawn unit: its out-going weights stay zero


@pytest.mark.parametrize("name", sorted(DEPTH_OPERATORS))
def test_depth_operators_keep_every_layer_in_order(name):
    layers = DEPTH_OPERATORS[name](3, 7)
    assert len(layers) == 7 and {s for s, _ in layers} == {0, 1, 2}
    if name != "stack":
        assert [s for s, _ in layers] == sorted(s for s, _ in layers)
    assert any(z for _, z in layers) == (name == "identity")
