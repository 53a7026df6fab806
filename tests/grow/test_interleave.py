"""Per-head interleaved axes (`/head`): the permutation to concatenated segments and back."""

from __future__ import annotations

import torch

from kinherit.arch.spec import Axis, t
from kinherit.grow.interleave import heads_layout, segments_layout, to_heads, to_segments
from kinherit.grow.maps import UnitMap
from kinherit.grow.surgery import widen

HEAD_DIM = 2
MAPS = {s: UnitMap(3, [0, 1, 2, 0, 1, 2]).per_channel(HEAD_DIM) for s in ("q", "kv")}  # 3 heads -> 6
AXIS = Axis.parse("out:q+kv+kv/head")


def test_notation_parses_the_interleaving():
    assert AXIS == Axis("out", ("q", "kv", "kv"), interleaved=True)
    assert not Axis.parse("out:q+kv+kv").interleaved


def test_heads_regroup_into_segments_and_back():
    # head h holds [q_h | k_h | v_h], each HEAD_DIM wide: channel c of head h is h*6 + c
    x = torch.arange(18.0)
    flat = to_segments(x, 0, AXIS, MAPS, grown=False)
    q_heads = [0, 1, 6, 7, 12, 13]  # q of heads 0, 1, 2
    assert flat[:6].tolist() == q_heads and flat[6:12].tolist() == [2, 3, 8, 9, 14, 15]
    assert torch.equal(to_heads(flat, 0, AXIS, MAPS, grown=False), x)


def test_widen_copies_whole_heads_with_their_own_q_k_v():
    spec = t("attention.query_key_value.weight", "out:q+kv+kv/head", "in:hidden")
    hidden = UnitMap(4, [0, 1, 2, 3, 0, 1, 2, 3])
    w = torch.randn(18, 4)
    grown = widen(w, spec, {**MAPS, "hidden": hidden}, scale_norm=False)  # (36, 8)
    per_head = grown.view(6, 3 * HEAD_DIM, 8)  # (heads, q|k|v, in)
    source = w.view(3, 3 * HEAD_DIM, 4)
    for h in range(6):
        torch.testing.assert_close(per_head[h, :, :4] * 2, source[h % 3], rtol=0, atol=0)
    flat, plain = segments_layout(grown, spec, {**MAPS, "hidden": hidden}, grown=True)
    assert not any(a.interleaved for a in plain.axes)
    assert torch.equal(heads_layout(flat, spec, {**MAPS, "hidden": hidden}, grown=True), grown)
