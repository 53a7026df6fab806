"""Recycling across growth: B = grow(A), so B + G(A_tuned − A) = grow(A_tuned) for the linear operators."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

from kinherit.grow import grow, grow_folder, grow_map, load_plan, replay
from kinherit.hf_folder import load_adapter_classifier, load_classifier
from kinherit.recycle.adapters import recycle_adapter
from kinherit.recycle.delta import recycle_full

from .conftest import make_adapter, make_base, make_tuned, sample_inputs


@pytest.mark.parametrize(
    ("width", "depth", "noise_db", "hidden"),
    [("clone", "identity", None, 64), ("net2net", "stack", 20.0, 48), ("zero", "interpolate", None, 48)],
)
def test_grow_of_tuned_equals_grow_of_base_plus_mapped_delta(tmp_path, tokenizer_dir, width, depth, noise_db, hidden):
    a = AutoModelForCausalLM.from_pretrained(str(make_base(tmp_path / "A", tokenizer_dir)))
    gen = torch.Generator().manual_seed(3)
    delta = {k: 0.05 * torch.randn(v.shape, generator=gen) for k, v in a.state_dict().items() if k != "lm_head.weight"}
    tuned = {k: v + delta[k] for k, v in a.state_dict().items() if k in delta}
    grown_a, plan, _ = grow(
        a,
        hidden_size=hidden,
        num_heads=hidden // 8,
        num_layers=4,
        width=width,
        depth=depth,
        noise_db=noise_db,
        verify=False,
    )
    grown_tuned = replay(plan, tuned)  # the same growth (same maps and noise) applied to A_tuned
    mapped = grow_map(plan, delta)
    base = grown_a.state_dict()
    assert set(mapped) >= set(grown_tuned) - {"lm_head.weight"}
    for key, value in grown_tuned.items():
        torch.testing.assert_close(value, base[key] + mapped[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert", "gemma2"])
def test_recycled_start_on_a_grown_base_is_the_grown_tuned_model(tmp_path, tokenizer_dir, family):
    """With B = grow(A) exactly (clone), B + G(A_tuned − A) and the widened head reproduce A_tuned's logits."""
    a = make_base(tmp_path / "A", tokenizer_dir, family=family)
    tuned = make_tuned(a, tmp_path / "A_tuned")
    layers = {"num_layers": 4, "depth": "identity"} if family != "bert" else {}  # post-norm BERT: width only
    grow_folder(a, tmp_path / "B", hidden_size=64, **layers)
    report = recycle_full(a, tuned, tmp_path / "B", tmp_path / "init")
    assert report.mapped and not report.transferred and report.growth.startswith("clone/")

    inputs = sample_inputs(tokenizer_dir)
    expected = load_classifier(tuned, "A_TUNED")[0].eval()(**inputs).logits
    recycled = load_classifier(tmp_path / "init", "init")[0].eval()
    assert recycled.config.hidden_size == 64
    torch.testing.assert_close(recycled(**inputs).logits, expected, rtol=0, atol=1e-4)

    # state level: the backbone is replay(plan, A_tuned's backbone + A's untouched LM head)
    lm = AutoModelForMaskedLM if family == "bert" else AutoModelForCausalLM
    a_state = lm.from_pretrained(str(a)).state_dict()
    tuned_state = load_file(str(tuned / "model.safetensors"))
    grown = replay(load_plan(tmp_path / "B"), {k: tuned_state.get(k, v) for k, v in a_state.items()})
    out = load_file(str(tmp_path / "init" / "model.safetensors"))
    shared = set(out) & set(grown)
    assert len(shared) == len(
        [k for k in out if k.startswith(recycled.base_model_prefix + ".") and ".pooler." not in k]
    )
    for key in shared:
        torch.testing.assert_close(out[key], grown[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "family", ["llama", "gpt_neox"]
)  # LoRA on q_proj/v_proj; on the per-head interleaved query_key_value
def test_adapter_maps_through_growth(tmp_path, tokenizer_dir, family):
    """G(B_r A_r) = G_out(B_r)·G_in(A_r): the widened adapter on grow(A) reproduces the adapter on A."""
    a = make_base(tmp_path / "A", tokenizer_dir, family=family)
    adapter = make_adapter(a, tmp_path / "adapter")
    grow_folder(a, tmp_path / "B", hidden_size=64, num_layers=3, depth="identity")
    report = recycle_adapter(a, adapter, tmp_path / "B", tmp_path / "recycled")
    assert report.head == ["base_model.model.score.weight"]
    assert any(".layers.2." in k for k in report.mapped)  # the new layer carries a (silenced) adapter
    inputs = sample_inputs(tokenizer_dir)
    expected = load_adapter_classifier(adapter, "A").eval()(**inputs).logits
    got = load_adapter_classifier(tmp_path / "recycled", "B").eval()(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)
