"""`tensor_sources`: each grown tensor's source and per-axis unit maps reproduce the growth's linear part."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_model

from kinherit.grow import grow
from kinherit.grow.sources import TensorSource, tensor_sources
from kinherit.grow.surgery import grow_state


def _rebuild(entry: TensorSource, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The linear part of growth from the source tensor and the axis maps alone (the module docstring's formula)."""

    def through_axes(x: torch.Tensor) -> torch.Tensor:
        for dim, axis in enumerate(entry.axes):
            if axis is not None:
                x = axis.map.gather(x, dim, divide=axis.divides)
        return x * entry.factor

    x = through_axes(state[entry.source])
    if entry.donor is not None:
        repeat = torch.ones((), dtype=torch.bool)
        for dim, axis in enumerate(entry.axes):
            if axis is not None and axis.kind != "in":
                shape = [1] * x.dim()
                shape[dim] = -1
                repeat = repeat & axis.map.repeat.view(shape)
        x = torch.where(repeat, through_axes(state[entry.donor]), x)
    return torch.zeros_like(x) if entry.zeroed else x


CASES = [
    ("llama", dict(hidden_size=64, num_layers=3), True),  # tied head: the final norm divided by the count
    ("phi3", dict(hidden_size=64, intermediate_size=100, width="net2net"), False),  # fused q|k|v and gate|up
    ("gpt_neox", dict(hidden_size=64, num_layers=4), False),  # q|k|v interleaved per head
    ("gpt2", dict(hidden_size=64, num_layers=3, width="aki", depth="interpolate"), True),  # AKI donor rows
    ("llama", dict(intermediate_size=80, num_kv_heads=4, hidden_size=64, width="zero"), False),  # drawn units
]


@pytest.mark.parametrize(
    ("family", "options", "tied"), CASES, ids=[f"{c[0]}-{c[1].get('width', 'clone')}" for c in CASES]
)
def test_axis_maps_reproduce_the_linear_growth(family, options, tied):
    source = tiny_model(family, tied=tied, gqa=family != "gpt_neox")
    growth = grow(source, noise_db=None, verify=False, **options)
    state = source.state_dict()
    linear = dict(grow_state(growth.plan, state, noise=False))  # no noise, no drawn rows: the linear part
    sources = tensor_sources(growth.plan)
    assert set(linear) <= set(sources)
    for key, grown in linear.items():
        torch.testing.assert_close(_rebuild(sources[key], state), grown, rtol=0, atol=1e-7, msg=key)


def test_layers_and_spaces_are_named():
    growth = grow(tiny_model("llama", gqa=True), hidden_size=64, num_layers=4, verify=False)
    sources = tensor_sources(growth.plan)
    new = sources["model.layers.1.self_attn.o_proj.weight"]
    assert (new.source, new.layer, new.source_layer, new.new_layer, new.zeroed) == (
        "model.layers.0.self_attn.o_proj.weight",
        1,
        0,
        True,
        True,
    )
    q = sources["model.layers.2.self_attn.q_proj.weight"]  # (q, hidden): out then in
    assert (q.source, q.new_layer, q.zeroed) == ("model.layers.1.self_attn.q_proj.weight", False, False)
    assert [(a.kind, a.divides, a.map.old, a.map.new) for a in q.axes] == [("out", False, 32, 64), ("in", True, 32, 64)]
    assert sources["model.embed_tokens.weight"].axes[0] is None  # the vocabulary does not grow
