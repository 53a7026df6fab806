"""Replay of a recorded growth, and the delta identity grow(A + D) = grow(A) + grow_map(D)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_model

from kinherit.grow import assemble_grown_model, grow, grow_folder, grow_map, load_plan, replay
from kinherit.grow.verify import Verifier


def test_replay_reproduces_the_saved_weights(tmp_path):
    source = tiny_model("llama", gqa=True)
    source.save_pretrained(tmp_path / "src")
    grow_folder(
        tmp_path / "src",
        tmp_path / "out",
        width="net2net",
        hidden_size=64,
        intermediate_size=100,
        num_layers=3,
        noise_db=20.0,
        seed=3,
    )
    saved = load_file(tmp_path / "out" / "model.safetensors")
    replayed = replay(tmp_path / "out" / "growth.json", source)
    assert set(saved) <= set(replayed)
    for key, value in saved.items():
        assert torch.equal(replayed[key], value), key
    plan = load_plan(tmp_path / "out")
    assert load_plan(json.loads((tmp_path / "out" / "growth.json").read_text())).to_dict() == plan.to_dict()


CASES = [
    ("llama", dict(width="clone", hidden_size=64, num_layers=4, noise_db=20.0), True),
    ("qwen2", dict(width="net2net", hidden_size=64, intermediate_size=100, noise_db=10.0), True),
    ("gpt2", dict(width="clone", hidden_size=64, num_layers=3, noise_db=20.0), True),
    ("bert", dict(width="clone", hidden_size=64, noise_db=20.0), True),
    ("gpt_neox", dict(width="clone", hidden_size=64, num_layers=4, noise_db=0.0), True),
    ("olmo2", dict(width="clone", hidden_size=64, num_layers=4, noise_db=0.0), True),
    ("phi3", dict(width="net2net", hidden_size=64, intermediate_size=100, noise_db=0.0), True),
    ("gpt_neox", dict(width="aki", hidden_size=64, num_layers=3, noise_db=0.0), False),
    ("gpt2", dict(width="net2net", hidden_size=48, noise_db=20.0), False),
    ("llama", dict(width="zero", hidden_size=48, depth="stack", num_layers=4, noise_db=20.0), False),
    ("roberta", dict(width="aki", hidden_size=64, depth="interpolate", num_layers=3), False),
    # (1 + w) norms: the tied final norm is scaled and new layers' post-norms set to w = −1 (affine);
    # the delta map keeps only the linear part
    ("gemma2", dict(width="clone", hidden_size=64, num_layers=4, noise_db=0.0), True),
    ("gemma3_text", dict(width="net2net", hidden_size=48, num_layers=3, noise_db=20.0), False),
]


@pytest.mark.parametrize(("family", "options", "exact"), CASES, ids=[f"{c[0]}-{c[1]['width']}" for c in CASES])
def test_delta_identity(family, options, exact):
    """Every operator is linear up to its additive noise, so tuned deltas map through grow_map."""
    gqa = family in ("llama", "qwen2", "gemma2", "gemma3_text")
    base = tiny_model(family, gqa=gqa)
    tuned = tiny_model(family, gqa=gqa)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    grown_base, plan, _ = grow(base, verify=False, **options)
    delta = {k: tuned.state_dict()[k] - v for k, v in base.state_dict().items()}
    mapped = grow_map(plan, delta)
    grown_tuned = replay(plan, tuned)
    for key, value in grown_base.state_dict().items():
        assert torch.allclose(grown_tuned[key], value + mapped[key], atol=1e-5, rtol=0), key
    if exact:  # the replayed growth of *other* weights is exact too
        comparisons = Verifier(tuned, plan).check(assemble_grown_model(plan, grown_tuned.items()), "replayed")
        assert max(c.max_deviation for c in comparisons) <= 1e-5


def test_grow_map_accepts_a_partial_delta():
    model = tiny_model("llama", gqa=True)
    _, plan, _ = grow(model, hidden_size=64, num_layers=4, verify=False)
    delta = {k: torch.ones_like(v) for k, v in model.state_dict().items() if "q_proj" in k}
    mapped = grow_map(plan, delta)
    assert set(mapped) == {f"model.layers.{j}.self_attn.q_proj.weight" for j in range(4)}
    assert mapped["model.layers.1.self_attn.q_proj.weight"].shape == (64, 64)
    assert torch.all(mapped["model.layers.1.self_attn.q_proj.weight"] == 0.5)  # fan-in split over 2 copies
    with pytest.raises(Exception, match="missing"):
        replay(plan, delta)  # strict replay needs every tensor
